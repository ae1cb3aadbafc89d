//go:build race

package hashring

// raceEnabled skips allocation assertions: the race detector allocates.
const raceEnabled = true
