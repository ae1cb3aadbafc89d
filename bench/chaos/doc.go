// Package chaos breaks a Tako cluster on purpose and checks what survived: a nemesis kills,
// pauses, partitions, wipes, skews the clock of and fills the disk under the processes of a
// cluster it runs on one machine, while a workload of writes, deletes and reads records every
// operation; at the end a checker reads every key from each replica itself and reports
// acknowledged writes or deletes that were lost, replicas that diverged and stale reads.
//
// What it owns:
//   - Cluster: a Tako deployment of separate hosts on loopback. Node i is configured at
//     127.0.0.(10+i) and every node uses the same HTTP and peer ports, as on real machines;
//     it really listens on 127.0.1.(10+i) (tako-node -listen), and an Interposer in the
//     harness forwards from the configured address, so that it can cut chosen node pairs
//     apart. Proxies listen on 127.0.2.x. Nothing leaves 127.0.0.0/8; network namespaces
//     are not used.
//   - Interposer and Partition: the TCP forwarder; the first frame of a peer connection (the
//     Hello) names the connecting node, an empty name is a proxy or other client.
//   - Nemesis: SIGKILL and restart, SIGSTOP/SIGCONT, partitions, a wiped var dir, and a full
//     disk (the node's var dir on a tmpfs the harness mounts, filled by a filler file).
//     Clock skew is a process flag (-clock-offset) chosen when the cluster starts. Every
//     event is logged with its time.
//   - Workload and History: client goroutines doing POST, DELETE and GET with unique values,
//     each operation recorded with its status and the X-Timestamp, X-Applied and
//     X-Read-Quorum reply headers; written as JSON lines for diagnosis.
//   - Check: the verdict over a History and each replica's final record (pure, tested with
//     hand-made histories), and Converge, which reads the replicas over the peer protocol
//     until they agree or a bound passes.
//   - Scenarios and Run, which runs one with a Config. Scenarios with replies to assert
//     (acks, read-quorum, clock-skew, clock-behind, disk-full) record their own violations
//     beside the checker's.
//
// Invariants: every process the harness starts runs in its own process group and is killed,
// every tmpfs unmounted and every temp dir removed (unless Config.Keep) before Run returns,
// also on error paths; every wait is bounded. The checker runs only after the workload and
// the nemesis have stopped, every node is up and unpaused, disks are freed and partitions
// healed.
//
// Concurrency: workload clients share only the History (mutex) and the Env's key set and
// assertion list (mutex); the Interposer and each process handle are safe for concurrent
// use; the nemesis runs in the scenario's own goroutine. Check is a pure function over data
// no longer changing.
package chaos
