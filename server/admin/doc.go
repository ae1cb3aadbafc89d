// Package admin is tako-admin: the operator's commands against a running
// cluster, each a thin reader of what the coordinator and the nodes already
// serve over HTTP. It owns no state and changes nothing but what a command
// asks for (repair starts anti-entropy passes; nothing else writes).
//
//	status           GET /status and GET /configuration on the coordinator:
//	                 every node of each live deployment by bucket, up or down,
//	                 its configuration, last healing pass and pending hints,
//	                 and the migration's state and progress.
//	ring KEY         GET /configuration on the coordinator; the key's buckets
//	                 (primary first) and replicas in each live deployment,
//	                 computed with package hashring as the nodes do.
//	get KEY --replica NODE
//	                 GET /replica/<key> on that node: its own record, no
//	                 routing and no repair.
//	repair [NODE]    POST /repair on that node, or on every node of the live
//	                 deployments.
//
//	keys [--prefix P]
//	                 GET /keys on a proxy (-proxy: every key of the cluster)
//	                 or a node (-node: its own keys), a page at a time
//	                 (--limit), printed as they come: memory stays one page
//	                 whatever the data set.
//
// Exit codes (Exit*): 0 ok; 1 the cluster could not be asked, or answered
// with an error; 2 bad usage; 3 status found the cluster unhealthy (a node
// of a live deployment down, a migration copying or dropping, or a finishing
// configuration held back), or keys listed without some node — the report
// is printed in full either way.
//
// Run is the whole program; cmd/tako-admin only binds it to the process.
// A Run is single-goroutine except where it asks several nodes at once.
package admin
