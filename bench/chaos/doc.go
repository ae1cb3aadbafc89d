// Package chaos breaks a Tako cluster on purpose and checks what survived: a nemesis kills,
// pauses, partitions, wipes, skews the clock of and fills the disk under the processes of a
// cluster it runs on one machine, while a workload of writes, deletes and reads records every
// operation; at the end a checker reads every key from each replica itself and reports
// acknowledged writes or deletes that were lost, replicas that diverged and stale reads.
//
// What it owns:
//   - Cluster: a Tako deployment of separate hosts on one machine, every node on the same
//     HTTP and peer ports, as on real machines, in one of two modes (Config.Network,
//     $TAKO_CHAOS_NETWORK; the default picks namespaces when it can):
//     Network namespaces (netns.go), where the harness is root and `ip netns add` works: a
//     bridge at 10.a.b.1/24 (a /24 no interface uses) and node i in its own namespace at
//     10.a.b.(10+i) on a veth pair, run through `ip netns exec` (which execs the node, so
//     signals reach it). Proxies, the coordinator (at the bridge address) and the
//     harness's clients stay in the root namespace. Partitions are blackhole routes inside
//     the namespaces; established connections stall, as in a real partition.
//     Loopback, otherwise: node i is configured at 127.0.0.(10+i) and really listens on
//     127.0.1.(10+i) (tako-node -listen); an Interposer in the harness forwards from the
//     configured address, so that it can cut chosen node pairs apart.
//     Proxies listen on 127.0.2.x in both. Nothing leaves 127.0.0.0/8 and the namespaces
//     the harness made, and it touches no interface or namespace it did not make.
//   - Interposer and Partition: the TCP forwarder of loopback mode; the first frame of a peer
//     connection (the Hello) names the connecting node, an empty name is a proxy or other
//     client. Under TLS (Layout.Secure, secure.go: certificates, a cluster secret and a
//     token made for the run, used by every client of the harness) the Hello is hidden, so
//     a secure cluster in loopback mode is not partitioned.
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
// every namespace, veth and bridge it made deleted, every tmpfs unmounted and every temp dir
// removed (unless Config.Keep) before Run returns, also on error paths; every wait is bounded. The checker runs only after the workload and
// the nemesis have stopped, every node is up and unpaused, disks are freed and partitions
// healed.
//
// Concurrency: workload clients share only the History (mutex) and the Env's key set and
// assertion list (mutex); the Interposer and each process handle are safe for concurrent
// use; the nemesis runs in the scenario's own goroutine. Check is a pure function over data
// no longer changing.
package chaos
