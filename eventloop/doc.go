/*
Package eventloop carries Tako's peer protocol (package codec) over TCP: Server, the peer
server every node runs on its peer_port, and Client, the pipelined connections nodes
and proxies use to reach it.

# Server

The server runs on gnet/v2 event loops (ServerConfig.NumLoops, default one per two CPUs;
each loop reads up to ReadBufferCap, default 1 MiB, per syscall, so that a 180 KiB frame
usually arrives in one read). For each readable connection the loop frames the input the
way gnet's docs recommend: Peek the 16-byte header, check magic, flags and length
(codec.ParseHeader against MaxFrame), Peek the whole frame, decode it (codec.DecodeRequest,
zero-copy), serve it, Discard it; at most MaxFramesPerRead frames per callback, after which
the connection wakes itself to continue behind other connections.

The first frame must be a Hello: the server picks the highest common version and answers
with its node id, or answers StatusVersion (StatusHandshake for any other first request)
and closes. Hello and Ping are answered by the server; every other request goes to the
Handler with a *ReplyWriter.

A frame the server cannot trust (bad magic, unknown header flags, over MaxFrame, corrupt
body) gets an error reply where the header allows addressing one (id 0 and OpNone
otherwise) and closes that connection only; the event is logged, at most once a second. An
unknown op gets StatusUnsupported and the connection carries on.

With ServerConfig.Secrets set, the Hello must carry a nonce and the frame after it must
be the client's proof of the shared cluster secret (the challenge-response of codec/doc.go,
"Cluster secret"; HMAC-SHA256, constant-time comparisons); the server proves itself in its
Hello reply. A connection that does not prove it (no nonce, any other frame, a wrong or
replayed proof) gets a StatusHandshake reply and is closed before any request reaches the
Handler; the event is logged with the remote address, at most once a second. The handshake
state lives in the connection and is touched only by its loop. ReadSecretFile reads a
secret and refuses a file that group or others may read.

Concurrency: Handler.Handle runs on the event loop and must not block (every connection of
the loop waits meanwhile: Tako's node serves only reads from memory there, and hands them
to goroutines while its process reads the disk, server/inline.go); its request points
into gnet's read buffer and is valid only during the call. It replies at once, or copies
what it needs, hands the work to another goroutine and replies from there: ReplyWriter
methods are safe from any goroutine. Replies are encoded into the connection's write queue
(a mutex-guarded buffer) and only the loop writes to the socket: replies produced while
the loop is serving the connection's input leave in one writev at the end of the callback;
a reply produced elsewhere schedules one flush on the loop that takes along every reply
queued meanwhile. It rings the loop's doorbell (doorbell.go: a Unix socket pair the loop
polls; one byte wakes the loop for every connection with replies waiting), because gnet's
EventLoop.Execute allocates twice per call; Execute is the fallback while a loop has no
bell. Replies may therefore leave in any order; the client matches them by id. Large
values can be replied without a copy (GetRef, SendFrame): their buffers are spliced into
the writev and released once the kernel (or gnet's outbound buffer) has them.
ReplyWriters are recycled whether the request is answered during Handle or later, so
serving a request allocates nothing; one kept for later is the handler's until it
replies.

# Limits

A connection may have at most ServerConfig.MaxInflight (1024) requests handed to the
Handler and unanswered, and its replies may hold about MaxOutbound (16 MiB) bytes, queued or
in gnet's outbound buffer. At either limit the loop stops framing its input (backpressure:
the requests wait in gnet's inbound buffer, which gnet fills regardless, so a paused
connection holding more than MaxFrame + MaxOutbound of input is closed) and resumes once
replies leave; gnet has no callback for a drained outbound buffer, so a paused connection
polls every 2ms. A Handler asks ReplyWriter.Admit before reading the store for a large
reply: over the budget the work is parked and retried on the loop when there is room; on a
closed connection it is dropped, never read. A read admitted below the budget may cross it
by its own reply, so a connection holds at most MaxOutbound + one reply per concurrent
worker. A connection whose peer takes none of its full budget for WriteTimeout (30s) is
closed.

The handshake (Hello, and with Secrets the proof) must finish within HandshakeTimeout (5s)
of accept, and its frames are capped at 64 KiB: a stranger cannot make the server buffer a
large frame. Once ready, a frame must be complete within ReadTimeout (10s) of its first
bytes. The ticker (gnet's OnTick) sweeps the deadlines.

The server accepts connections itself (accept.go) and enrolls them with gnet: gnet v2.9.7
stops its whole engine on an accept error such as EMFILE. On EMFILE or ENFILE the accept loop
sheds one pending connection with a reserve descriptor and backs off (5ms to 500ms). One
remote address holds at most MaxConnsPerIP (1024) connections: the accept loop closes the
next one at once (logged at most once a second), before a loop or a descriptor dup is spent
on it; OnClose gives the count back.

Stop closes the listener and all connections; replies sent afterwards are dropped
(ErrConnClosed) and zero-copy buffers still released.

# TLS

With ServerConfig.TLS set, every connection runs under TLS (Tako sets mutual TLS: the
client's certificate must chain to the cluster's CA), and the Hello and cluster secret
handshake run inside it. gnet reads and writes raw descriptors and cannot run crypto/tls,
which needs a blocking net.Conn. The server therefore accepts as usual, runs the TLS
handshake in a goroutine of its own (within HandshakeTimeout of accept, so a stranger's
silent connection costs a goroutine for 5s at most and never reaches a loop), and then
bridges the connection into the loops (tls.go): a Unix socketpair whose one end gnet serves
exactly like a plaintext TCP connection, and two goroutines that copy between the other end
and the tls.Conn (64 KiB and 256 KiB buffers; 1 MiB socket buffers, so a large reply does not
spill into gnet's outbound buffer). Everything above (framing, handshake states, the
limits, backpressure, timeouts, zero-copy replies) is the same code under TLS; a peer that
stops reading stalls the copy, the socketpair fills and gnet's budget applies as for a TCP
peer; each copy into TLS must finish within WriteTimeout; either side ending closes both,
and Stop closes every TLS connection, so no bridge outlives it.
With TLS off nothing changes: connections are enrolled straight from accept, zero-copy.

The client wraps its connection in tls.Client (ServerName defaults to Addr's host) within
DialTimeout. crypto/tls turns each Write into records of its own, so a TLS connection
gathers the small frames a writev would carry together into one 64 KiB buffer per write
(frames of 16 KiB and more are written as they are).

Why a bridge, measured (eventloop_timing_test.go, 2 shared and heavily loaded cores, so
ratios from side-by-side runs, TLS 1.3 with AES-GCM and ECDSA P-256 certificates):
  - The alternative, a goroutine per connection serving the Handler from a tls.Conn, needs
    a second implementation of everything the loop does per connection: framing, the
    handshake states, MaxInflight and MaxOutbound with parking, pausing and the partial
    frame deadline. Those are the protections against abuse. Measured as a prototype
    without any of them (BenchmarkTLSDirect, against the bridge's -tls runs of the same
    workloads in the same run): large values gain nothing, encryption is the cost (180 KiB
    Sets 285-430 MB/s direct against 240-530 MB/s bridged, Gets 290-670 against 470-650;
    180 KiB writes over loopback TLS to a reader that discards them, BenchmarkRawTCP/tls-*,
    reach 0.6-0.7 GB/s on one connection and 0.8-1.1 GB/s on two, against 2.6-4.8 GB/s in
    plaintext); small requests gain 1.2-1.5x (pipelined 100 B Gets 320-370k/s against
    200-300k/s, one at a time 38-43k/s against 25-32k/s: the bridge's two hand-offs per
    request). A gain on small requests only, small next to what TLS itself costs, was not
    worth a second implementation of the limits.
  - Kernel TLS (the Go side does the handshake, the kernel encrypts, gnet keeps its
    zero-copy writev) would avoid the copies, but crypto/tls exposes no traffic keys or
    record sequence numbers and cannot hand a connection over, and the tls module is not
    available on this host (net.ipv4.tcp_available_ulp lists only mptcp).
  - Feeding crypto/tls from OnTraffic through an in-memory net.Conn still needs a goroutine
    per connection to block in, and a copy: the bridge with more code.

Small pipelined requests lose little: 100 B Gets and Sets from 64 goroutines over TLS run
at 190-280k/s, against 270-450k/s in plaintext on the same runs. The TLS handshake costs
about 2.1-2.5 ms per connection on top of the Hello (0.2-0.3 ms, BenchmarkHandshake), once:
nodes keep their connections. A TLS connection costs three descriptors (the TCP socket and
the socketpair) and two goroutines.

# Client

A Client keeps ClientConfig.Conns (default 2; Tako's nodes and proxies use 1) connections
to one peer, dialled on first use, each opened with the Hello handshake (with ClientConfig.Secrets: the challenge-response, in
which the client refuses a server that proves none of its secrets, ErrUnproven, before it
sends anything but the Hello). A request with
nothing else in flight on its connection is written by its caller; others are coalesced by
the connection's writer goroutine into one writev. Requests are pipelined: any number of goroutines
may call Do (or Get, Set, ...) at once; each request gets an id, is registered as pending
and queued; the reply is matched by id, in whatever order it comes. A request waits for its
reply, its context, or the death of its connection, which fails every pending request at
once with ErrConnLost (the request may or may not have been applied). A dead connection is
redialled on the next use; failed dials back off exponentially (20ms doubling to
MaxBackoff, default 1s, with jitter), during which requests fail fast with ErrUnavailable
instead of piling up behind a dead peer. A request whose context carries no deadline
waits RequestTimeout plus the time its bytes and those queued ahead of it take at MinRate
(20 MB/s); a large reply restarts it with time for the reply's bytes.

StartGet, StartStat and StartSet (a value under 8 KiB, copied into the frame) send a request
on a live connection and return at once; the reply goes to a Completion, called on the
connection's reader goroutine (or where the call ends: the connection's failure, or the
sweep that fails started calls past RequestTimeout, every 100ms or RequestTimeout/4). A
coordinator fanning a request out to several replicas thus needs no goroutine per call,
waiting. Ownership: whoever takes a call out of the pending map (reader, failure, sweep)
completes it; the removal is under the connection's mutex, so it completes exactly once,
and the completion runs after the mutex is released, so it may start calls itself. A
failed direct write fails the connection on the Start caller's goroutine, so completions
(this call's and others') can run there before Start returns; with no
connection up, Start sends nothing and returns false, and the caller uses the blocking
call, which dials.

The client is built on net.Conn with two goroutines per connection rather than on
gnet.NewClient, because that is both simpler and faster here:
  - Callers are goroutines that block for their reply. A reader goroutine reads replies
    straight into the pooled buffer that becomes the caller's Response: small replies are
    read many per syscall and copied out once; a large one (a 180 KiB Get) is read directly
    into place, with no copy in user space. gnet's read buffer is only valid inside
    OnTraffic, so a gnet client must copy every reply out and hand it to the caller's
    goroutine anyway, through the same wake-up.
  - A writer goroutine writes everything queued since its last write in one writev
    (net.Buffers), yielding once first so that runnable callers can join the batch. Large
    Set values go into the writev as their own buffers, straight from the caller's slice:
    the value of a 180 KiB Set is copied only by the kernel. (The caller's value is not
    referenced after Set returns: a caller whose context expires mid-write waits for that
    write, which WriteTimeout bounds.)
  - Dial timeouts, deadlines and cancellation are plain net.Conn and context.Context.

With two connections per peer the goroutine cost is negligible. Measured on 2 cores with
the server in the same process (eventloop_timing_test.go): about 0.8M pipelined 100 B
requests per second with 0 allocations per request, and 180 KiB Sets at 8 GB/s, on par
with raw loopback TCP carrying the same bytes over two connections.

Responses own a pooled buffer that their slices point into: Release each Response once
done with it.
*/
package eventloop
