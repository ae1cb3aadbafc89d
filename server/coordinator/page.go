package coordinator

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/tako-kv/tako/server/config"
)

// PathPage is the status page: GET / is the cluster's Status as HTML for
// a browser, refreshing itself every PageRefresh.
const (
	PathPage    = "/"
	PageRefresh = 5 * time.Second
)

// Roles of a group of nodes in ByBucket.
const (
	RoleActive  = "active"  // the active deployment
	RoleTarget  = "target"  // the deployment a migration copies to
	RoleLeaving = "leaving" // named by no live deployment: the previous configuration's, handing off
)

// BucketNodes is one bucket of one live deployment with its nodes' views.
type BucketNodes struct {
	Deployment string     `json:"deployment"` // "" for RoleLeaving
	Role       string     `json:"role"`
	Bucket     string     `json:"bucket"`
	Nodes      []NodeView `json:"nodes"`
}

// ByBucket lays st's nodes out by the buckets of cfg's live deployments,
// active first, then target; a node of both is listed under each. Nodes of
// st that neither deployment names come last, as RoleLeaving. A node cfg
// names that st lacks (st read under another version) is shown down, so
// that no node of the layout goes missing. The status page and tako-admin
// status share this layout.
func ByBucket(cfg *config.Config, st Status) []BucketNodes {
	views := make(map[string]NodeView, len(st.Nodes))
	for _, v := range st.Nodes {
		views[v.ID] = v
	}
	var out []BucketNodes
	placed := map[string]bool{}
	for _, d := range liveDeployments(cfg) {
		for _, b := range d.dep.Buckets {
			g := BucketNodes{Deployment: d.dep.Name, Role: d.role, Bucket: b.ID}
			for _, n := range b.Nodes {
				v, ok := views[n.ID]
				if !ok {
					v = NodeView{ID: n.ID, Addr: n.HTTPAddr(), Bucket: b.ID, Error: "not in the coordinator's status"}
				}
				g.Nodes = append(g.Nodes, v)
				placed[n.ID] = true
			}
			out = append(out, g)
		}
	}
	for _, v := range st.Nodes {
		if !placed[v.ID] {
			out = appendLeaving(out, v)
		}
	}
	return out
}

type liveDeployment struct {
	dep  *config.Deployment
	role string
}

func liveDeployments(cfg *config.Config) []liveDeployment {
	out := []liveDeployment{{cfg.ActiveDeployment(), RoleActive}}
	if t := cfg.TargetDeployment(); t != nil {
		out = append(out, liveDeployment{t, RoleTarget})
	}
	return out
}

// appendLeaving adds v to the leaving group of its bucket, creating it.
func appendLeaving(out []BucketNodes, v NodeView) []BucketNodes {
	i := slices.IndexFunc(out, func(g BucketNodes) bool { return g.Role == RoleLeaving && g.Bucket == v.Bucket })
	if i < 0 {
		out, i = append(out, BucketNodes{Role: RoleLeaving, Bucket: v.Bucket}), len(out)
	}
	out[i].Nodes = append(out[i].Nodes, v)
	return out
}

// Progress is copied/(copied+remaining) in percent, 100 when nothing is
// left to copy.
func (m MigrationStatus) Progress() float64 {
	if total := m.Copied + m.Remaining; total > 0 {
		return 100 * float64(m.Copied) / float64(total)
	}
	return 100
}

// pageData is what pageHTML renders.
type pageData struct {
	Status
	Groups  []BucketNodes
	Refresh int // seconds
	Now     time.Time
}

func (c *Coordinator) servePage(w http.ResponseWriter, r *http.Request) {
	cfg := c.Config()
	st := c.status(r.Context(), cfg)
	var b bytes.Buffer
	if err := renderPage(&b, cfg, st, time.Now()); err != nil {
		http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set(HeaderVersion, st.ConfigVersion)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b.Bytes())
}

// renderPage writes the page into b (a buffer, so that a template error
// is answered as a 500 rather than a half-written page).
func renderPage(b *bytes.Buffer, cfg *config.Config, st Status, now time.Time) error {
	return pageTemplate.Execute(b, pageData{Status: st, Groups: ByBucket(cfg, st),
		Refresh: int(PageRefresh / time.Second), Now: now})
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" },
	"seconds": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Second).String()
	},
	"pct": func(p float64) string { return strconv.FormatFloat(p, 'f', 1, 64) },
}).Parse(pageHTML))

// pageHTML refreshes itself with a meta refresh: no script, so the page
// works with JavaScript off and a failed poll cannot leave it stale but
// looking current (the browser shows the failed load instead).
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>Tako cluster status</title>
<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { padding: 0.2em 0.8em; text-align: left; border-bottom: 1px solid #ddd; }
tr.down td.state { color: #fff; background: #c0392b; }
tr.up td.state { color: #fff; background: #27ae60; }
td.stale { color: #c0392b; }
progress { width: 20em; }
.err { color: #c0392b; font-size: 90%; }
</style>
</head>
<body>
<h1>Tako cluster status</h1>
<p>Configuration <code>{{.ConfigVersion}}</code>: active deployment <b>{{.Active}}</b>
{{- if .Target}}, target deployment <b>{{.Target}}</b>{{end}}.
Shown {{.Now.UTC.Format "2006-01-02 15:04:05 MST"}}, refreshed every {{.Refresh}} s.</p>

<h2>Migration: <span id="migration-state">{{.Migration.State}}</span></h2>
{{- with .Migration}}
{{- if ne .State "none"}}
<p><progress id="migration-progress" max="100" value="{{pct .Progress}}">{{pct .Progress}}%</progress>
{{pct .Progress}}%: {{.Copied}} records copied, {{.Remaining}} remaining
{{- with .ETASeconds}}, about {{seconds .}} left{{end}}.</p>
{{- with .Waiting}}
<p>Waiting for:</p>
<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
{{- end}}
{{- with .Pending}}<p>Finishing configuration <code>{{.}}</code> waits until the migration is ready (POST /force-finish applies it now).</p>{{end}}
{{- end}}

<h2>Nodes</h2>
<table id="nodes">
<thead><tr><th>deployment</th><th>bucket</th><th>node</th><th>http</th><th>state</th><th>config</th><th>last pass</th><th>in sync</th><th>hints pending</th></tr></thead>
<tbody>
{{- $now := .Now}}{{$version := .ConfigVersion}}
{{- range .Groups}}{{$g := .}}
{{- range .Nodes}}
<tr class="node {{if .Up}}up{{else}}down{{end}}" data-node="{{.ID}}">
<td>{{if $g.Deployment}}{{$g.Deployment}} ({{$g.Role}}){{else}}{{$g.Role}}{{end}}</td>
<td>{{$g.Bucket}}</td>
<td class="id">{{.ID}}</td>
<td>{{.Addr}}</td>
<td class="state">{{if .Up}}up{{else}}down{{end}}</td>
{{- with .Report}}
<td{{if ne .ConfigVersion $version}} class="stale"{{end}}><code>{{.ConfigVersion}}</code></td>
{{- with .LastPass}}
<td>{{ago $now .Ended}}{{with .Err}} <span class="err">{{.}}</span>{{end}}</td>
<td>{{if .InSync}}yes{{else}}no ({{.Unconfirmed}} unconfirmed){{end}}</td>
{{- else}}
<td>none yet</td><td>-</td>
{{- end}}
<td>{{.Hints.Pending}}</td>
{{- else}}
<td colspan="4" class="err">{{.Error}}</td>
{{- end}}
</tr>
{{- end}}
{{- end}}
</tbody>
</table>
</body>
</html>
`
