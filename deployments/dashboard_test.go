package deployments

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const dashboardFile = "grafana/gearbox.json"

// grafanaVar is a variable reference in a query: $name or ${name}.
var grafanaVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// expandVars replaces Grafana's variables with values PromQL accepts: its
// interval variables ($__rate_interval, …) with a duration, the dashboard's
// own (which stand inside label values) with a plain word.
func expandVars(q string) string {
	return grafanaVar.ReplaceAllStringFunc(q, func(v string) string {
		if strings.HasPrefix(strings.Trim(v, "${}"), "__") {
			return "5m"
		}
		return "x"
	})
}

// labelValues is a query variable's query: label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardCovers are the metrics the dashboard must show, by topic.
var dashboardCovers = map[string]string{
	"throughput":             "gearbox_jobs_completed_total",
	"errors":                 "gearbox_jobs_failed_total",
	"queue lag":              "nats_consumer_num_pending",
	"jobs awaiting ack":      "nats_consumer_num_ack_pending",
	"batch fill":             "gearbox_batch_rows_sum",
	"queue latency":          "gearbox_queue_seconds_bucket",
	"compute latency":        "gearbox_compute_seconds_bucket",
	"precision in force":     "gearbox_policy_precision",
	"quality error":          "gearbox_quality_error_bucket",
	"quality target":         "gearbox_policy_max_error",
	"policy changes":         "gearbox_policy_changes_total",
	"GPU power":              "gearbox_gpu_power_watts",
	"GPU energy":             "gearbox_gpu_energy_joules_total",
	"redeliveries":           "gearbox_jobs_redelivered_total",
	"quality check outcomes": "gearbox_quality_checks_total",
	"why the policy holds":   "gearbox_policy_hold",
	"ruled-out precisions":   "gearbox_policy_excluded",
	"answers retrying":       "gearbox_answers_retrying",
}

// strictDashboard decodes a dashboard with Grafana's Go types, which refuse
// unknown fields, wrong types and missing required fields. (Grafana
// Foundation SDK v0.0.22's UnmarshalJSONStrict returns its list of errors as
// an error even when the list is empty, and then drops the panels and
// queries it decoded: it is used here only for its errors.)
func strictDashboard(b []byte) error {
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(b); err != nil && err.Error() != "" {
		return err
	}
	return nil
}

// dashPanel is what the tests read of a panel.
type dashPanel struct {
	Type, Title string
	Datasource  struct{ Type string }
	Targets     []struct {
		Expr       string
		Datasource struct{ Type string }
	}
	Panels []dashPanel // a row's panels
}

// dashFile is what the tests read of a dashboard.
type dashFile struct {
	Panels     []dashPanel
	Templating struct {
		List []struct {
			Name, Type string
			Query      json.RawMessage
		}
	}
}

// TestDashboard decodes the dashboard strictly, parses every panel's query
// as PromQL and checks the metrics and labels it names.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := strictDashboard(b); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var d dashFile
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var panels []dashPanel
	for _, p := range d.Panels {
		if p.Type == "row" {
			panels = append(panels, p.Panels...)
			continue
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		t.Fatalf("%s: no panels", dashboardFile)
	}

	known := knownMetrics(t)
	used := map[string]bool{}
	for _, p := range panels {
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q (%s): want a title and at least one query", p.Title, p.Type)
		}
		for _, q := range p.Targets {
			if p.Datasource.Type != "prometheus" || q.Datasource.Type != "prometheus" {
				t.Errorf("panel %q: data source %q, query's %q; want prometheus", p.Title, p.Datasource.Type, q.Datasource.Type)
			}
			names, errs := checkQuery(expandVars(q.Expr), known)
			for _, e := range errs {
				t.Errorf("panel %q: %s", p.Title, e)
			}
			for _, n := range names {
				used[n] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != string(dashboard.VariableTypeQuery) {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query %s is not a string", v.Name, v.Query)
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q)
			continue
		}
		if ls, ok := known[m[1]]; !ok || !contains(ls, m[2]) {
			t.Errorf("variable %s: no metric %s with label %s", v.Name, m[1], m[2])
		}
	}
	for topic, metric := range dashboardCovers {
		if !used[metric] {
			t.Errorf("no panel shows %s (%s)", topic, metric)
		}
	}
}

// TestDashboardStrict checks that the strict decoding refuses what Grafana's
// schema does not allow, so that TestDashboard passing means something.
func TestDashboardStrict(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"unknown dashboard field", `"title": "Gearbox"`, `"title": "Gearbox", "titel": "x"`},
		{"unknown query field", `"legendFormat": `, `"legendFromat": `},
		{"wrong type", `"refresh": "30s"`, `"refresh": 30`},
	} {
		bad := strings.Replace(string(b), tc.from, tc.to, 1)
		if bad == string(b) {
			t.Fatalf("%s: %q is not in %s", tc.name, tc.from, dashboardFile)
		}
		if err := strictDashboard([]byte(bad)); err == nil {
			t.Errorf("%s: decoded without error", tc.name)
		}
	}
}

func TestExpandVars(t *testing.T) {
	got := expandVars(`sum(rate(a{model=~"$model", s="${stream}"}[$__rate_interval]))`)
	want := `sum(rate(a{model=~"x", s="x"}[5m]))`
	if got != want {
		t.Errorf("expandVars = %s; want %s", got, want)
	}
}
