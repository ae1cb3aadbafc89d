package eventloop

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tako-kv/tako/codec"
)

// Sizes of the cluster-secret handshake (codec/doc.go, "Cluster secret").
const (
	// NonceSize is the length of each side's handshake nonce.
	NonceSize = 32
	// ProofSize is the length of a proof: an HMAC-SHA256.
	ProofSize = sha256.Size
	// MinSecretLen is the shortest cluster secret accepted.
	MinSecretLen = 32

	maxSecretFile = 64 << 10
)

// Labels that open the two HMAC messages, so neither side's proof can be reflected as the
// other's.
const (
	serverLabel = "tako-server"
	clientLabel = "tako-client"
)

// Errors of the cluster-secret handshake.
var (
	// ErrShortSecret: a configured secret is shorter than MinSecretLen.
	ErrShortSecret = errors.New("eventloop: cluster secret too short")
	// ErrSecretFile: a secret file is unusable (readable by others, too short, not a
	// regular file). The message names the file.
	ErrSecretFile = errors.New("eventloop: unusable cluster secret file")
	// ErrUnproven: the peer did not prove that it knows a cluster secret this side holds
	// (it has none, or another one). Wrapped by ErrHandshake on the client.
	ErrUnproven = errors.New("eventloop: cluster secret not proven")
)

// ReadSecretFile reads a cluster secret: the file's bytes, without trailing whitespace (so
// that `openssl rand -hex 32 > FILE` works), at least MinSecretLen of them. The file must
// be private (ReadPrivateFile). Errors wrap ErrSecretFile (or the *fs.PathError) and name
// the file.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := ReadPrivateFile(path, maxSecretFile)
	switch {
	case errors.Is(err, ErrNotPrivate):
		return nil, fmt.Errorf("%w %w", ErrSecretFile, err)
	case err != nil:
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) < MinSecretLen {
		return nil, fmt.Errorf("%w %s: holds %d bytes, want at least %d (for example: openssl rand -hex 32 > %s)",
			ErrSecretFile, path, len(b), MinSecretLen, path)
	}
	return b, nil
}

// ErrNotPrivate is wrapped by ReadPrivateFile's errors for a file that is not a private
// regular file, or too large.
var ErrNotPrivate = errors.New("eventloop: file not private")

// privateFileError says why a file is refused; its text is "PATH: why".
type privateFileError struct{ path, why string }

func (e *privateFileError) Error() string        { return e.path + ": " + e.why }
func (e *privateFileError) Is(target error) bool { return target == ErrNotPrivate }

// ReadPrivateFile reads a file that holds secrets (the cluster secret, HTTP tokens): it must
// be a regular file that neither its group nor others can read or write (mode & 0o077 ==
// 0), of at most limit bytes (a multiple of 1 KiB). Errors wrap ErrNotPrivate (with the file and the reason, and
// the chmod that fixes it) or are the *fs.PathError of opening or reading it.
func ReadPrivateFile(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat() // the file opened, not whatever the path names by now
	if err != nil {
		return nil, err
	}
	switch mode := fi.Mode(); {
	case !mode.IsRegular():
		return nil, &privateFileError{path, "not a regular file"}
	case mode.Perm()&0o077 != 0:
		return nil, &privateFileError{path, fmt.Sprintf("mode %04o lets group or others access it (chmod 600 %s)", mode.Perm(), path)}
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > limit {
		return nil, &privateFileError{path, fmt.Sprintf("larger than %d KiB", limit>>10)}
	}
	return b, nil
}

// checkSecrets refuses secrets shorter than MinSecretLen.
func checkSecrets(secrets [][]byte) error {
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return fmt.Errorf("%w: secret %d has %d bytes, want at least %d", ErrShortSecret, i, len(s), MinSecretLen)
		}
	}
	return nil
}

// newNonce returns NonceSize fresh random bytes.
func newNonce() []byte {
	n := make([]byte, NonceSize)
	_, _ = rand.Read(n) // crypto/rand.Read never fails (it panics instead)
	return n
}

// proof is HMAC-SHA256(secret, label | first | second | sid bytes16 | cid bytes16): the server
// proves with (serverLabel, Nc, Ns), the client with (clientLabel, Ns, Nc).
func proof(secret []byte, label string, first, second []byte, sid, cid string) []byte {
	m := hmac.New(sha256.New, secret)
	var msg []byte
	msg = append(msg, label...)
	msg = append(msg, first...)
	msg = append(msg, second...)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(sid)))
	msg = append(msg, sid...)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(cid)))
	msg = append(msg, cid...)
	m.Write(msg)
	return m.Sum(nil)
}

// matchProof returns the first of secrets (in order) under which one of proofs is the
// expected HMAC, or nil. Comparisons are constant-time.
func matchProof(secrets [][]byte, proofs [][]byte, expect func(secret []byte) []byte) []byte {
	for _, s := range secrets {
		want := expect(s)
		for _, p := range proofs {
			if hmac.Equal(p, want) {
				return s
			}
		}
	}
	return nil
}

// helloAuth is what an authenticating side reads from the other's Hello (or Hello reply):
// its nonce and its proofs.
type helloAuth struct {
	nonce  []byte
	proofs [][]byte
}

// parseHelloAuth collects the nonce and proof TLVs; the slices point into the frame.
// Unknown types are ignored, as the protocol requires.
func parseHelloAuth(it codec.TLVIter) helloAuth {
	var a helloAuth
	for t, ok := it.Next(); ok; t, ok = it.Next() {
		switch {
		case t.Type == codec.TLVNonce && a.nonce == nil && len(t.Value) == NonceSize:
			a.nonce = t.Value
		case t.Type == codec.TLVProof && len(t.Value) == ProofSize && len(a.proofs) < 8:
			a.proofs = append(a.proofs, t.Value)
		}
	}
	return a
}
