package admin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tako-kv/tako/hashring"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
)

// Placement is where a key lives under one configuration.
type Placement struct {
	Key           string                `json:"key"`
	ConfigVersion string                `json:"config_version"`
	Deployments   []DeploymentPlacement `json:"deployments"`
	// Replicas is every replica of the key in any live deployment, each
	// once, in natural order: while a migration runs, the union of both
	// layouts holds the key.
	Replicas []string `json:"replicas"`
}

// DeploymentPlacement is the key's buckets in one live deployment,
// primary first.
type DeploymentPlacement struct {
	Name          string            `json:"name"`
	Role          string            `json:"role"` // coordinator.RoleActive or RoleTarget
	BucketsPerKey int               `json:"buckets_per_key"`
	Buckets       []BucketPlacement `json:"buckets"`
}

// BucketPlacement is one bucket holding the key and its nodes.
type BucketPlacement struct {
	ID    string   `json:"id"`
	Nodes []target `json:"nodes"`
}

// Place computes key's placement in cfg's live deployments with the same
// ring the nodes build (bucket IDs in configuration order, the
// deployment's hash.points).
func Place(cfg *config.Config, key []byte) (Placement, error) {
	p := Placement{Key: string(key), ConfigVersion: cfg.Version}
	live := []struct {
		d    *config.Deployment
		role string
	}{{cfg.ActiveDeployment(), coordinator.RoleActive}, {cfg.TargetDeployment(), coordinator.RoleTarget}}
	for _, l := range live {
		if l.d == nil {
			continue
		}
		dp, err := placeIn(l.d, key)
		if err != nil {
			return Placement{}, err
		}
		dp.Role = l.role
		p.Deployments = append(p.Deployments, dp)
		for _, b := range dp.Buckets {
			for _, n := range b.Nodes {
				if !slices.Contains(p.Replicas, n.ID) {
					p.Replicas = append(p.Replicas, n.ID)
				}
			}
		}
	}
	slices.SortFunc(p.Replicas, config.NaturalCompare)
	return p, nil
}

func placeIn(d *config.Deployment, key []byte) (DeploymentPlacement, error) {
	ids := make([]string, len(d.Buckets))
	for i, b := range d.Buckets {
		ids[i] = b.ID
	}
	ring, err := hashring.New(ids, d.RingPoints)
	if err != nil {
		return DeploymentPlacement{}, fmt.Errorf("deployment %q: %w", d.Name, err)
	}
	dp := DeploymentPlacement{Name: d.Name, BucketsPerKey: d.BucketsPerKey}
	for _, b := range ring.Lookup(nil, key, d.BucketsPerKey) {
		bp := BucketPlacement{ID: d.Buckets[b].ID}
		for _, n := range d.Buckets[b].Nodes {
			bp.Nodes = append(bp.Nodes, target{ID: n.ID, HTTP: n.HTTPAddr()})
		}
		dp.Buckets = append(dp.Buckets, bp)
	}
	return dp, nil
}

func runRing(ctx context.Context, e *env, args []string) error {
	pos, err := e.parseCommand(e.command("ring"), args, 1, 1)
	if err != nil {
		return err
	}
	cfg, err := e.fetchConfig(ctx)
	if err != nil {
		return err
	}
	p, err := Place(cfg, []byte(pos[0]))
	if err != nil {
		return err
	}
	if e.json {
		return e.writeJSON(p)
	}
	return writePlacement(e.out, p)
}

// writePlacement prints one line per bucket: deployment, its rank for the
// key (1 = primary), the bucket and its nodes.
func writePlacement(w io.Writer, p Placement) error {
	fmt.Fprintf(w, "key %q under configuration %s\n", p.Key, p.ConfigVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOYMENT\tRANK\tBUCKET\tNODES")
	for _, d := range p.Deployments {
		for i, b := range d.Buckets {
			nodes := make([]string, len(b.Nodes))
			for j, n := range b.Nodes {
				nodes[j] = n.String()
			}
			fmt.Fprintf(tw, "%s (%s)\t%d/%d\t%s\t%s\n", d.Name, d.Role, i+1, d.BucketsPerKey, b.ID, strings.Join(nodes, ", "))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write placement: %w", err)
	}
	_, err := fmt.Fprintf(w, "replicas: %s\n", strings.Join(p.Replicas, " "))
	return err
}
