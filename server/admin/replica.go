package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tako-kv/tako/httpproxy"
)

// Record states of ReplicaRecord.
const (
	StateValue     = "value"
	StateTombstone = "tombstone"
	StateAbsent    = "absent"
)

// ReplicaRecord is one node's own record of a key (GET /replica/<key>).
type ReplicaRecord struct {
	target
	Key   string `json:"key"`
	State string `json:"state"` // StateValue, StateTombstone or StateAbsent
	// Timestamp is the record's last-write-wins timestamp (µs since the
	// epoch); 0 when absent.
	Timestamp int64      `json:"timestamp,omitempty"`
	Time      *time.Time `json:"time,omitempty"`
	Size      int64      `json:"size"` // value bytes
}

// readReplica asks t for its own record of key. The value is counted, not
// kept.
func (e *env) readReplica(ctx context.Context, t target, key string) (ReplicaRecord, error) {
	path := "/replica/" + string(httpproxy.AppendEscapedKey(nil, []byte(key)))
	resp, err := e.do(ctx, "GET", t.HTTP, path)
	if err != nil {
		return ReplicaRecord{}, err
	}
	defer resp.Body.Close()
	rec := ReplicaRecord{target: t, Key: key}
	switch {
	case resp.StatusCode == http.StatusOK:
		rec.State = StateValue
		if rec.Size, err = io.Copy(io.Discard, resp.Body); err != nil {
			return ReplicaRecord{}, fmt.Errorf("%s GET %s: read value: %w", t.HTTP, path, err)
		}
	case resp.StatusCode == http.StatusNotFound && strings.EqualFold(resp.Header.Get("X-Tombstone"), "yes"):
		rec.State = StateTombstone
	case resp.StatusCode == http.StatusNotFound:
		rec.State = StateAbsent
		return rec, nil
	default:
		return ReplicaRecord{}, replyError(t.HTTP, "GET", path, resp)
	}
	if err := rec.setTimestamp(resp.Header.Get("X-Timestamp")); err != nil {
		return ReplicaRecord{}, fmt.Errorf("%s GET %s: %w", t.HTTP, path, err)
	}
	return rec, nil
}

func (r *ReplicaRecord) setTimestamp(h string) error {
	ts, err := strconv.ParseInt(h, 10, 64)
	if err != nil {
		return fmt.Errorf("X-Timestamp %q: %w", h, err)
	}
	t := time.UnixMicro(ts).UTC()
	r.Timestamp, r.Time = ts, &t
	return nil
}

func runGet(ctx context.Context, e *env, args []string) error {
	fs := e.command("get")
	replica := fs.String("replica", "", "the `NODE` to read: an id (with -c) or HOST:HTTPPORT")
	pos, err := e.parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	t, err := e.resolve(ctx, *replica)
	if err != nil {
		return err
	}
	rec, err := e.readReplica(ctx, t, pos[0])
	if err != nil {
		return err
	}
	if e.json {
		return e.writeJSON(rec)
	}
	return writeRecord(e.out, rec)
}

func writeRecord(w io.Writer, r ReplicaRecord) error {
	var err error
	switch r.State {
	case StateAbsent:
		_, err = fmt.Fprintf(w, "%s: key %q absent\n", r.target, r.Key)
	case StateTombstone:
		_, err = fmt.Fprintf(w, "%s: key %q deleted: tombstone, timestamp %d (%s)\n",
			r.target, r.Key, r.Timestamp, r.Time.Format(time.RFC3339Nano))
	default:
		_, err = fmt.Fprintf(w, "%s: key %q value of %d bytes, timestamp %d (%s)\n",
			r.target, r.Key, r.Size, r.Timestamp, r.Time.Format(time.RFC3339Nano))
	}
	return err
}
