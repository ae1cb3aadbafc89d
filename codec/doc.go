/*
Package codec encodes and decodes the frames of Tako's binary peer protocol: the protocol
nodes and proxies speak to each other over TCP (package eventloop carries the frames).

The package is pure functions over []byte. Encoders are append-style
(AppendX(dst, ...) []byte) and allocate only when dst must grow. Decoders (ParseHeader,
DecodeRequest, DecodeReply) never allocate on success and never copy: the keys, values and
records they return point into the frame they were given and are valid only as long as the
caller leaves that buffer unchanged. Nothing here keeps state; everything is safe for
concurrent use on distinct buffers.

# Frames

A connection carries a stream of frames in each direction. Every frame is a fixed 16-byte
header followed by a body of the length the header announces. All integers are big-endian;
a timestamp (ts) is a signed 64-bit count of microseconds since the Unix epoch.

	offset  size  field
	0       1     magic    0xA7 (Magic)
	1       1     op       Op: which operation (replies echo the request's op)
	2       1     status   Status: 0 in requests; the outcome in replies
	3       1     flags    bit 0 = reply (FlagReply); bits 1-7 must be 0
	4       4     length   body length in bytes, not counting the header
	8       8     id       request id, chosen by the client, echoed by the reply
	16      len   body     op-specific, below

Requests carry an id so that many can be in flight on one connection (pipelining); the
server may answer them in any order and the client matches replies by id. Id 0 is reserved
for the handshake and for connection-level errors. A receiver rejects a frame whose
header announces more than its limit (ErrTooLarge; default DefaultMaxFrame, 64 MiB plus
128 KiB, enough for a 64 MiB value and a 64 KiB key) before reading the body, so a bad
length can never make it buffer gigabytes.

Variable-length fields are prefixed by their length: key, value, start, end and next by a
u32 ("bytes32" below), node id and message by a u16 ("bytes16"). Keys of records, Get, Stat
and Set are 1 to 64 KiB (MaxKeyLen). A body holds exactly its fields: trailing bytes are an
error (ErrCorrupt), so a frame has one meaning.

# Records

Set, BatchSet and Scan share one record encoding (17 bytes plus key and value):

	offset  size  field
	0       8     ts       i64
	8       1     flags    bit 0 = tombstone (Tombstone); other bits are carried through
	9       4     keylen   u32, 1..65536
	13      klen  key
	13+k    4     vallen   u32
	17+k    vlen  value    empty for tombstones

A record list is a u32 count followed by that many records. Unlike record flags, the
header flags and the scan flags below admit no unknown bits.

# Bodies

Every reply whose status has the high bit set (Status.IsError) has the same body, whatever
its op (even one the receiver does not know): a bytes16 message of at most 1 KiB
(MaxMessageLen). A server that cannot parse a
connection's stream sends such a reply with op 0 (OpNone) and id 0, then closes the
connection. Other bodies, by op:

	op            request body                         reply body (non-error status)
	1 Hello       "TAKO" (4 bytes)                     version  u16, chosen by the server
	              min version u16                      node id  bytes16 (server's)
	              max version u16                      TLVs to the end of the body
	              node id bytes16 (empty for proxies)
	              TLVs to the end of the body
	2 Ping        payload (the whole body)             the same payload
	3 Get         key bytes32                          ts i64, flags u8, value bytes32
	                                                   (status OK, or NotFound with zeros)
	4 Stat        key bytes32                          ts i64, flags u8 (OK or NotFound)
	5 Set         one record                           ts i64 now current for the key
	                                                   (status Applied or Stale)
	6 BatchSet    record list                          u32 count, then per record in request
	                                                   order: status u8 (Applied|Stale), ts i64
	7 Scan        start bytes32 (inclusive)            scan flags u8 (bit 0 = more)
	              end bytes32 (exclusive; empty =      record list (values empty unless
	                unbounded)                           requested)
	              limit u32 (records; 0 = default)     next bytes32 (where to resume)
	              limit bytes u32 (0 = default)
	              scan flags u8 (ScanMode: bit 0 =
	                values, bit 1 = 8-byte value
	                hashes in their place; not both)
	8             retired: a key-range digest that no version served; the number stays taken
	9 Sums        shift u8 (0..16)                     u32 count, then per group that holds a
	              u32 count, then per range:             requested segment, in group order:
	                lo u16, hi u16 (segments,            group u16 (segment >> shift),
	                inclusive, lo <= hi; ranges          count u64, xor u64
	                ascending, none overlapping)
	10 SegmentScan segment u16                         as Scan's reply; each record's value is
	              after bytes32 (exclusive; empty =      its 8-byte record hash
	                from the first key)
	              limit u32 (records; 0 = default)
	11 Purge      record list: remove each if still    as BatchSet's reply: Applied = removed,
	                stored exactly so                    Stale = kept (it changed)

Key listing (HTTP GET /keys on a proxy) is Scan without values: each node's keys of a range
in order, a page at a time, resumed from next; the proxy merges the nodes' pages.

A segment (Sums, SegmentScan) is one of the 65536 slices of the ring named by the top 16
bits of a key's ring hash (hashring.Hash); the sums are the store's per-segment XOR of
record hashes and record count (kv.SegmentSum), which replicas compare to find the few
segments whose records differ.

A delete is a Set of a record with the tombstone flag and an empty value. Get returns a
stored tombstone as StatusOK with the tombstone flag (replicas need its timestamp to resolve
conflicts); StatusNotFound means nothing at all is stored for the key.

A TLV is type u16, length u32, value. TLV types, ops and statuses are append-only lists
("ONLY APPEND TO THIS LIST"): numbers are never reused or renumbered.

# Handshake and versions

The first frame a client sends is a Hello offering the protocol versions MinVersion..
MaxVersion it speaks; the server answers with the highest version both speak
(NegotiateVersion) and its node id, or with a StatusVersion error reply and closes the
connection. Any other request before the Hello gets StatusHandshake and a close. Receivers
ignore TLV types they do not know, so features such as a proof of the shared cluster secret
can ride in TLVs without a new version; a change to any layout above needs a new version.

TLV types (codec.TLVxxx):

	type  name   value
	1     nonce  32 random bytes, fresh per connection (client Hello: Nc; Hello reply: Ns)
	2     proof  32 bytes, HMAC-SHA256 (Hello reply only; one per secret the server holds)

# Cluster secret

When the cluster shares a secret (configuration key cluster_secret_file; package eventloop
does the arithmetic), the handshake is a mutual challenge-response and the secret never
crosses the wire:

	client -> server  Hello, id 0, with TLV nonce Nc
	server -> client  Hello reply, id 0, with TLV nonce Ns, then one TLV proof
	                  HMAC(k, server message) per secret k the server holds
	client            checks a proof against each of its secrets; with none matching it
	                  closes the connection (the server does not know the secret)
	client -> server  Ping, id 0, payload exactly 32 bytes: HMAC(k, client message) with
	                  the secret k that matched
	server -> client  the Ping reply, id 0, echoing it, once it matches one of its secrets

The HMAC messages, where sid is the node id in the Hello reply and cid the node id in the
Hello (empty for proxies), each prefixed by its u16 length:

	server message  "tako-server" (11 bytes) | Nc (32) | Ns (32) | sid bytes16 | cid bytes16
	client message  "tako-client" (11 bytes) | Ns (32) | Nc (32) | sid bytes16 | cid bytes16

A server holding a secret answers a Hello without a 32-byte nonce, any frame other than
that Ping in second place, or a wrong proof with a StatusHandshake error reply (id 0) and
closes the connection: no request is served before the proof checks out. Because Ns is
fresh per connection, a recorded handshake replayed to a server fails; because Nc is, a
recorded server reply replayed to a client fails; the distinct labels keep either side's
proof from being reflected as the other's. A server without a secret ignores the nonce
TLV (as every version before did); a client holding a secret refuses a server that sends
no matching proof. Holding two secrets (during a rotation: cluster_secret_previous_file)
lets a process connect with every peer that shares either.

# Errors

ErrTruncated means fewer bytes than the header announces (for a stream: wait for more);
ErrTooLarge, ErrBadMagic and ErrCorrupt mean the stream cannot be trusted and the connection
should be closed; ErrUnknownOp means a sound frame of an op this version does not know,
which a server answers with StatusUnsupported and skips. ErrVersion means no common version.
Errors are wrapped with the op and field that failed; compare with errors.Is.
*/
package codec
