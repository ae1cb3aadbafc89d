// Package e2e holds Tako's process-level tests: they build the real binaries
// once (TestMain), run them as separate processes on free 127.0.0.1 ports
// with temporary var directories, kill them with real signals and check what
// survived through the HTTP API and the peer protocol. The package has no
// non-test code besides this comment.
package e2e
