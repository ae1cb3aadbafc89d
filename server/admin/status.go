package admin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
)

// StatusReport is what status prints with -json: the coordinator's Status
// as it serves it, and the verdict.
type StatusReport struct {
	coordinator.Status
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`
}

func runStatus(ctx context.Context, e *env, args []string) error {
	if _, err := e.parseCommand(e.command("status"), args, 0, 0); err != nil {
		return err
	}
	cfg, st, err := e.statusAndConfig(ctx)
	if err != nil {
		return err
	}
	groups := coordinator.ByBucket(cfg, st)
	rep := StatusReport{Status: st, Problems: problems(groups, st.Migration)}
	rep.Healthy = len(rep.Problems) == 0
	if e.json {
		err = e.writeJSON(rep)
	} else {
		err = writeStatus(e.out, st, groups, e.now())
	}
	if err == nil && !rep.Healthy {
		err = fmt.Errorf("%w: %s", errUnhealthy, strings.Join(rep.Problems, "; "))
	}
	return err
}

// statusAndConfig reads the status and the configuration it was taken
// under. An edit between the two reads is retried a few times; the layout
// of the last configuration read is used if edits keep coming.
func (e *env) statusAndConfig(ctx context.Context) (*config.Config, coordinator.Status, error) {
	const tries = 3
	var cfg *config.Config
	var st coordinator.Status
	var err error
	for range tries {
		if st, err = e.fetchStatus(ctx); err != nil {
			return nil, st, err
		}
		if cfg, err = e.fetchConfig(ctx); err != nil {
			return nil, st, err
		}
		if cfg.Version == st.ConfigVersion {
			break
		}
	}
	return cfg, st, nil
}

// problems lists what makes the cluster unhealthy: a node of a live
// deployment down (once, however many deployments name it), a migration
// copying or dropping, a finishing configuration held back.
func problems(groups []coordinator.BucketNodes, m coordinator.MigrationStatus) []string {
	var out, seen []string
	for _, g := range groups {
		for _, n := range g.Nodes {
			if n.Up || g.Role == coordinator.RoleLeaving || slices.Contains(seen, n.ID) {
				continue
			}
			seen = append(seen, n.ID)
			out = append(out, fmt.Sprintf("node %s (%s) is down", n.ID, n.Addr))
		}
	}
	if m.State == coordinator.StateCopying || m.State == coordinator.StateDropping {
		out = append(out, fmt.Sprintf("migration %s: %d records remaining, waiting for %d nodes", m.State, m.Remaining, len(m.Waiting)))
	}
	if m.Pending != "" {
		out = append(out, "finishing configuration "+m.Pending+" is held back until the migration is ready")
	}
	return out
}

// writeStatus prints the status as a table, nodetool-style: one line per
// node of each bucket, then the reasons of the nodes that did not answer.
func writeStatus(w io.Writer, st coordinator.Status, groups []coordinator.BucketNodes, now time.Time) error {
	fmt.Fprintf(w, "configuration %s: active deployment %s", st.ConfigVersion, st.Active)
	if st.Target != "" {
		fmt.Fprintf(w, ", target deployment %s", st.Target)
	}
	fmt.Fprintf(w, "\n%s\n", migrationLine(st.Migration))
	if st.Migration.State != coordinator.StateNone { // with none, nothing waits on them
		for _, why := range st.Migration.Waiting {
			fmt.Fprintf(w, "  waiting: %s\n", why)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOYMENT\tBUCKET\tNODE\tHTTP\tSTATE\tCONFIG\tLAST PASS\tIN SYNC\tHINTS")
	var notes []string // under the table: long reasons would widen every row
	for _, g := range groups {
		dep := g.Role
		if g.Deployment != "" {
			dep = g.Deployment + " (" + g.Role + ")"
		}
		for _, n := range g.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dep, g.Bucket, n.ID, n.Addr, nodeColumns(n, st.ConfigVersion, now))
			if note := nodeNote(n); note != "" && !slices.Contains(notes, note) {
				notes = append(notes, note)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

// nodeNote is why a node is down, or its last pass's error, or "".
func nodeNote(n coordinator.NodeView) string {
	switch {
	case !n.Up:
		return "down " + n.ID + ": " + n.Error
	case n.Report != nil && n.Report.LastPass != nil && n.Report.LastPass.Err != "":
		return n.ID + " last pass: " + n.Report.LastPass.Err
	}
	return ""
}

// migrationLine is "migration: STATE", with progress while one runs.
func migrationLine(m coordinator.MigrationStatus) string {
	s := "migration: " + m.State
	if m.State != coordinator.StateNone {
		s += fmt.Sprintf("  copied %d  remaining %d  (%.1f%%)", m.Copied, m.Remaining, m.Progress())
		if m.ETASeconds != nil {
			s += "  eta " + time.Duration(*m.ETASeconds*float64(time.Second)).Round(time.Second).String()
		}
	}
	if m.Pending != "" {
		s += "  finishing configuration " + m.Pending + " held back until ready"
	}
	return s
}

// nodeColumns are a node's STATE to HINTS columns, tab-separated.
func nodeColumns(n coordinator.NodeView, version string, now time.Time) string {
	if !n.Up || n.Report == nil {
		return "down\t-\t-\t-\t-"
	}
	rep := n.Report
	cfg := "current"
	if rep.ConfigVersion != version {
		cfg = rep.ConfigVersion
	}
	pass, inSync := "none yet", "-"
	if p := rep.LastPass; p != nil {
		pass = now.Sub(p.Ended).Round(time.Second).String() + " ago"
		inSync = "yes"
		if !p.InSync {
			inSync = "no"
		}
		if p.Unconfirmed > 0 {
			inSync += fmt.Sprintf(" (%d unconfirmed)", p.Unconfirmed)
		}
		if p.Err != "" {
			inSync += " (error below)"
		}
	}
	return fmt.Sprintf("up\t%s\t%s\t%s\t%d", cfg, pass, inSync, rep.Hints.Pending)
}
