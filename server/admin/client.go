package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
)

// maxErrorBody bounds how much of an error reply is quoted.
const maxErrorBody = 512

// do sends one request to addr (host:port) and returns the response; the
// caller closes its body. Errors name the address, method and path. With
// -cacert, nodes are reached over HTTPS; the coordinator speaks HTTP.
func (e *env) do(ctx context.Context, method, addr, path string) (*http.Response, error) {
	scheme := "http://"
	if e.cacert != "" && addr != e.coord {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, method, scheme+addr+path, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", addr, method, path, err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", httpproxy.BearerHeader(e.token))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", addr, method, path, err)
	}
	return resp, nil
}

// replyError describes a reply with an unexpected status, quoting the
// start of its one-line reason.
func replyError(addr, method, path string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return fmt.Errorf("%s %s %s: %s: %s", addr, method, path, resp.Status, strings.TrimSpace(string(body)))
}

// getJSON decodes the JSON answer of GET path on addr into v.
func (e *env) getJSON(ctx context.Context, addr, path string, v any) error {
	resp, err := e.do(ctx, "GET", addr, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return replyError(addr, "GET", path, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s GET %s: decode: %w", addr, path, err)
	}
	return nil
}

// coordinator returns the -c address, or a usage error when there is none.
func (e *env) coordinator() (string, error) {
	if e.coord == "" {
		return "", usageErrorf("this command needs a coordinator: -c HOST:PORT")
	}
	return e.coord, nil
}

// fetchConfig reads the configuration the coordinator serves.
func (e *env) fetchConfig(ctx context.Context) (*config.Config, error) {
	addr, err := e.coordinator()
	if err != nil {
		return nil, err
	}
	resp, err := e.do(ctx, "GET", addr, coordinator.PathConfig)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, replyError(addr, "GET", coordinator.PathConfig, resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s GET %s: %w", addr, coordinator.PathConfig, err)
	}
	cfg, err := config.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("%s GET %s: %w", addr, coordinator.PathConfig, err)
	}
	return cfg, nil
}

// fetchStatus reads the coordinator's Status.
func (e *env) fetchStatus(ctx context.Context) (coordinator.Status, error) {
	var st coordinator.Status
	addr, err := e.coordinator()
	if err == nil {
		err = e.getJSON(ctx, addr, coordinator.PathStatus, &st)
	}
	return st, err
}

// target is one node a command talks to: its id when known and its HTTP
// address.
type target struct {
	ID   string `json:"node,omitempty"`
	HTTP string `json:"http"`
}

func (t target) String() string {
	if t.ID == "" {
		return t.HTTP
	}
	return t.ID + " (" + t.HTTP + ")"
}

// resolve turns a node named on the command line — an id of the
// coordinator's configuration, or HOST:PORT of its HTTP port — into a
// target. An empty name means -node.
func (e *env) resolve(ctx context.Context, name string) (target, error) {
	switch {
	case name == "" && e.node == "":
		return target{}, usageErrorf("name a node: an id (with -c) or -node HOST:HTTPPORT")
	case name == "":
		return target{HTTP: e.node}, nil
	case strings.Contains(name, ":"):
		return target{HTTP: name}, nil
	}
	cfg, err := e.fetchConfig(ctx)
	if err != nil {
		return target{}, err
	}
	n, ok := cfg.FindNode(name)
	if !ok {
		return target{}, fmt.Errorf("node %q: not in configuration %s of %s", name, cfg.Version, e.coord)
	}
	return target{ID: n.ID, HTTP: n.HTTPAddr()}, nil
}
