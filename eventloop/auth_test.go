package eventloop

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/internal/logbuf"
)

var (
	secretA = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	secretB = []byte("fedcba9876543210fedcba9876543210")
	secretC = []byte("a different secret, also 32 byte")
)

// countingHandler counts the requests that reach the handler.
type countingHandler struct {
	n atomic.Int64
	h Handler
}

func (c *countingHandler) Handle(req *codec.Request, rw *ReplyWriter) {
	c.n.Add(1)
	c.h.Handle(req, rw)
}

func withSecrets(secrets ...[]byte) func(*ServerConfig) {
	return func(cfg *ServerConfig) { cfg.Secrets = secrets }
}

func clientSecrets(secrets ...[]byte) func(*ClientConfig) {
	return func(cfg *ClientConfig) { cfg.Secrets = secrets }
}

// rawAuthHandshake runs the client side of the challenge-response by hand on nc, proving
// with secret, and returns every byte it sent (for replaying).
func rawAuthHandshake(t *testing.T, nc net.Conn, clientID string, secret []byte) []byte {
	t.Helper()
	nonce := newNonce()
	sent := codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte(clientID),
		codec.TLV{Type: codec.TLVNonce, Value: nonce})
	if _, err := nc.Write(sent); err != nil {
		t.Fatal(err)
	}
	r := readReply(t, nc)
	a := parseHelloAuth(r.TLVs)
	if r.Status != codec.StatusOK || a.nonce == nil || len(a.proofs) != 1 {
		t.Fatalf("hello reply: %s %q, nonce %x, %d proofs", r.Status, r.Msg, a.nonce, len(a.proofs))
	}
	if want := proof(secret, serverLabel, nonce, a.nonce, string(r.NodeID), clientID); !bytes.Equal(a.proofs[0], want) {
		t.Fatalf("server proof %x, want %x", a.proofs[0], want)
	}
	ping := codec.AppendPing(nil, 0, proof(secret, clientLabel, a.nonce, nonce, string(r.NodeID), clientID))
	if _, err := nc.Write(ping); err != nil {
		t.Fatal(err)
	}
	if r := readReply(t, nc); r.Status != codec.StatusOK || r.Op != codec.OpPing {
		t.Fatalf("proof reply: %s %s %q", r.Op, r.Status, r.Msg)
	}
	return append(sent, ping...)
}

// expectRefused reads the StatusHandshake reply a non-member gets and checks that the
// connection is then closed.
func expectRefused(t *testing.T, nc net.Conn) {
	t.Helper()
	if r := readReply(t, nc); r.Status != codec.StatusHandshake {
		t.Fatalf("reply: %s %s id=%d %q, want %s", r.Op, r.Status, r.ID, r.Msg, codec.StatusHandshake)
	}
	expectEOF(t, nc)
}

func TestSecretMemberServed(t *testing.T) {
	h := &countingHandler{h: newFakeStore()}
	srv := startServer(t, h, "", withSecrets(secretA))
	ctx := testCtx(t)
	for _, id := range []string{"client-1", ""} { // a node, and a proxy (no id)
		c := newTestClient(t, srv.Addr().String(), clientSecrets(secretA), func(cfg *ClientConfig) { cfg.NodeID = id })
		if m, err := c.Set(ctx, []byte("k"), 10, 0, []byte("v")); err != nil || m.Status != codec.StatusApplied && m.Status != codec.StatusStale {
			t.Fatalf("member %q: set: %+v %v", id, m, err)
		}
		resp, err := c.Get(ctx, []byte("k"))
		if err != nil || string(resp.Value) != "v" {
			t.Fatalf("member %q: get: %v", id, err)
		}
		resp.Release()
	}
	if n := h.n.Load(); n != 4 {
		t.Fatalf("handler served %d requests, want 4", n)
	}
	// By hand, byte for byte as codec/doc.go describes it.
	nc := rawConn(t, srv.Addr().String())
	rawAuthHandshake(t, nc, "raw", secretA)
	_, _ = nc.Write(codec.AppendGet(nil, 1, []byte("k")))
	if r := readReply(t, nc); r.Status != codec.StatusOK || string(r.Value) != "v" {
		t.Fatalf("get after a raw handshake: %s %q", r.Status, r.Msg)
	}
}

// TestSecretNonMembersRefused: no request from a connection that did not prove the
// secret reaches the handler, every such connection is closed, and the refusals are
// logged with the remote address.
func TestSecretNonMembersRefused(t *testing.T) {
	h := &countingHandler{h: newFakeStore()}
	logs := &logbuf.Buffer{}
	srv := startServer(t, h, "", withSecrets(secretA), func(cfg *ServerConfig) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	addr := srv.Addr().String()
	set := codec.AppendSet(nil, 1, []byte("k"), 1, 0, []byte("v"))

	t.Run("no secret", func(t *testing.T) {
		nc := rawConn(t, addr)
		_, _ = nc.Write(append(codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte("x")), set...))
		expectRefused(t, nc)
		c := newTestClient(t, addr)
		if _, err := c.Set(testCtx(t), []byte("k"), 1, 0, []byte("v")); !errors.Is(err, ErrHandshake) {
			t.Fatalf("client without secret: %v", err)
		}
	})
	t.Run("no proof", func(t *testing.T) {
		nc := rawConn(t, addr)
		_, _ = nc.Write(codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte("x"),
			codec.TLV{Type: codec.TLVNonce, Value: newNonce()}))
		if r := readReply(t, nc); r.Status != codec.StatusOK {
			t.Fatalf("hello: %s %q", r.Status, r.Msg)
		}
		_, _ = nc.Write(set)
		expectRefused(t, nc)
	})
	t.Run("short nonce", func(t *testing.T) {
		nc := rawConn(t, addr)
		_, _ = nc.Write(codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte("x"),
			codec.TLV{Type: codec.TLVNonce, Value: []byte("short")}))
		expectRefused(t, nc)
	})
	t.Run("wrong secret", func(t *testing.T) {
		// A raw client that ignores the server's proof and proves with another secret.
		nc := rawConn(t, addr)
		nonce := newNonce()
		_, _ = nc.Write(codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte("x"),
			codec.TLV{Type: codec.TLVNonce, Value: nonce}))
		r := readReply(t, nc)
		a := parseHelloAuth(r.TLVs)
		if a.nonce == nil {
			t.Fatalf("hello reply without nonce: %s %q", r.Status, r.Msg)
		}
		bad := proof(secretB, clientLabel, a.nonce, nonce, string(r.NodeID), "x")
		_, _ = nc.Write(append(codec.AppendPing(nil, 0, bad), set...))
		expectRefused(t, nc)
		// And the real client, which refuses the server first.
		c := newTestClient(t, addr, clientSecrets(secretB))
		if _, err := c.Set(testCtx(t), []byte("k"), 1, 0, []byte("v")); !errors.Is(err, ErrHandshake) || !errors.Is(err, ErrUnproven) {
			t.Fatalf("client with the wrong secret: %v", err)
		}
	})
	t.Run("replayed handshake", func(t *testing.T) {
		first := rawConn(t, addr)
		recorded := rawAuthHandshake(t, first, "x", secretA)
		first.Close()
		before := h.n.Load()
		nc := rawConn(t, addr)
		_, _ = nc.Write(append(recorded, set...))
		if r := readReply(t, nc); r.Status != codec.StatusOK || r.Op != codec.OpHello {
			t.Fatalf("hello: %s %q", r.Status, r.Msg)
		}
		expectRefused(t, nc)
		if n := h.n.Load(); n != before {
			t.Fatalf("replay served %d requests", n-before)
		}
	})
	if n := h.n.Load(); n != 0 {
		t.Fatalf("handler served %d requests of non-members", n)
	}
	if out := logs.String(); !strings.Contains(out, "cluster secret not proven") || !strings.Contains(out, "remote=127.0.0.1:") {
		t.Fatalf("refusals not logged with the remote address:\n%s", out)
	}
}

// TestClientRefusesServer: a client holding a secret refuses a server that does not
// prove it, whether it holds another secret or none.
func TestClientRefusesServer(t *testing.T) {
	f := func(name string, mod func(*ServerConfig)) {
		t.Helper()
		h := &countingHandler{h: newFakeStore()}
		srv := startServer(t, h, "", mod)
		c := newTestClient(t, srv.Addr().String(), clientSecrets(secretA))
		err := c.Ping(testCtx(t))
		if !errors.Is(err, ErrHandshake) || !errors.Is(err, ErrUnproven) {
			t.Errorf("%s: err = %v, want ErrUnproven", name, err)
		}
		if n := h.n.Load(); n != 0 {
			t.Errorf("%s: %d requests reached the handler", name, n)
		}
	}
	f("wrong secret", withSecrets(secretB))
	f("no secret", func(*ServerConfig) {})

	// A rogue server that does not know the secret, sends a made-up proof and would accept
	// anything: the client must hang up without sending its proof or any request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	afterHello := make(chan int, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, codec.HeaderSize)
		if _, err := io.ReadFull(nc, hdr); err != nil {
			return
		}
		h, _ := codec.ParseHeader(hdr, 0)
		_, _ = io.ReadFull(nc, make([]byte, h.BodyLen))
		_, _ = nc.Write(codec.AppendHelloReply(nil, 0, codec.MinVersion, []byte("rogue"),
			codec.TLV{Type: codec.TLVNonce, Value: newNonce()}, codec.TLV{Type: codec.TLVProof, Value: newNonce()}))
		n, _ := io.Copy(io.Discard, nc) // until the client closes
		afterHello <- int(n)
	}()
	c := newTestClient(t, ln.Addr().String(), clientSecrets(secretA), func(cfg *ClientConfig) { cfg.Conns = 1 })
	if err := c.Ping(testCtx(t)); !errors.Is(err, ErrUnproven) {
		t.Errorf("rogue server: err = %v, want ErrUnproven", err)
	}
	if n := <-afterHello; n != 0 {
		t.Errorf("the client sent %d bytes to a server that did not prove the secret", n)
	}
}

// TestSecretRotation: a process holding two secrets (the new one first) connects with
// every peer that shares either, so a rolling restart never splits the cluster.
func TestSecretRotation(t *testing.T) {
	f := func(server, client [][]byte, ok bool) {
		t.Helper()
		srv := startServer(t, newFakeStore(), "", withSecrets(server...))
		c := newTestClient(t, srv.Addr().String(), clientSecrets(client...))
		if err := c.Ping(testCtx(t)); (err == nil) != ok {
			t.Errorf("server %d secrets, client %d: err = %v, want ok=%v", len(server), len(client), err, ok)
		}
	}
	old, next := secretA, secretB
	f([][]byte{next, old}, [][]byte{old}, true)       // phase 1: restarted server, old client
	f([][]byte{old}, [][]byte{next, old}, true)       // phase 1: old server, restarted client
	f([][]byte{next, old}, [][]byte{next, old}, true) // everyone restarted once
	f([][]byte{next}, [][]byte{next, old}, true)      // phase 2
	f([][]byte{next, old}, [][]byte{next}, true)
	f([][]byte{next}, [][]byte{old}, false) // skipped phase 1: refused
	f([][]byte{next, old}, [][]byte{secretC}, false)
}

func TestShortSecretRefused(t *testing.T) {
	s := NewServer(ServerConfig{Addr: "127.0.0.1:0", Handler: newFakeStore(), Secrets: [][]byte{[]byte("short")}})
	if err := s.Start(); !errors.Is(err, ErrShortSecret) {
		t.Fatalf("start: %v", err)
	}
	srv := startServer(t, newFakeStore(), "", withSecrets(secretA))
	c := newTestClient(t, srv.Addr().String(), clientSecrets([]byte("short")))
	if err := c.Ping(testCtx(t)); !errors.Is(err, ErrShortSecret) {
		t.Fatalf("client: %v", err)
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	f := func(name, content string, mode os.FileMode, want string, wantErr string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
			t.Fatal(err)
		}
		got, err := ReadSecretFile(path)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case wantErr == "" && string(got) != want:
			t.Errorf("%s: secret %q, want %q", name, got, want)
		case wantErr != "" && (err == nil || !errors.Is(err, ErrSecretFile) || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), path)):
			t.Errorf("%s: err = %v, want ErrSecretFile naming the file and %q", name, err, wantErr)
		}
	}
	secret := strings.Repeat("ab", 32)
	f("ok", secret+"\n", 0o600, secret, "")
	f("owner-only-read", secret, 0o400, secret, "")
	f("world-readable", secret, 0o644, "", "mode 0644")
	f("group-readable", secret, 0o640, "", "mode 0640")
	f("short", "tooshort\n", 0o600, "", "holds 8 bytes")
	f("blank", strings.Repeat(" ", 40)+"\n", 0o600, "", "holds 0 bytes")
	f("huge", strings.Repeat("x", maxSecretFile+1), 0o600, "", "larger than 64 KiB")
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := ReadSecretFile(dir); err == nil {
		t.Errorf("directory accepted")
	}
}

// TestProofVector pins the HMAC messages of codec/doc.go to the numbers of the
// cluster-secret block in codec/testdata/frames (computed independently, with Python's hmac).
func TestProofVector(t *testing.T) {
	nc, ns := []byte("client-nonce-0123456789abcdefghi"), []byte("server-nonce-0123456789abcdefghi")
	f := func(got []byte, want string) {
		t.Helper()
		if h := hex.EncodeToString(got); h != want {
			t.Errorf("proof %s, want %s", h, want)
		}
	}
	f(proof(secretA, serverLabel, nc, ns, "n2", "n1"), "a039f056944990c05e0c64643a596b9d2f8ea813c6cd1c5a4f738157c7cffc03")
	f(proof(secretA, clientLabel, ns, nc, "n2", "n1"), "144a49c8535ca5d8bfe6e0dcb8d0425f39ec39dcc84227579ec03c669a897071")
}
