package deployments

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/gearbox-inference/gearbox/internal/gpumon"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// natsExporter lists the metrics of prometheus-nats-exporter 0.20.1 that
// the rules and dashboard read, with their labels. The NATS Helm chart
// (2.14.2) runs it with -jsz=all -prefix=nats, which names the JetStream
// metrics nats_consumer_* and nats_stream_* (collector/jsz.go). The exporter
// is not a Go module the proxy serves, so this list is kept by hand.
var natsExporter = func() map[string][]string {
	server := []string{"server_id", "server_name", "cluster", "domain", "meta_leader", "is_meta_leader"}
	stream := append(server, "account", "account_name", "account_id", "stream_name", "stream_leader", "is_stream_leader", "stream_raft_group")
	consumer := append(append([]string{}, stream...), "consumer_name", "consumer_leader", "is_consumer_leader", "consumer_desc")
	return map[string][]string{
		"nats_consumer_num_pending":     consumer,
		"nats_consumer_num_ack_pending": consumer,
		"nats_stream_total_messages":    stream,
	}
}()

// pending lists metrics the rules and dashboard read that the worker does
// not export yet, with their labels. When the worker registers one, this test
// fails: take it off the list.
var pending = map[string][]string{}

// targetLabels are the labels Prometheus adds to every scraped series: job
// and instance, and those the prometheus-operator's ServiceMonitor and
// PodMonitor add.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

// scrapeMetrics are Prometheus's own series per target.
var scrapeMetrics = map[string][]string{"up": nil}

// descRegisterer collects the descriptors of what is registered with it.
type descRegisterer struct{ descs []*prometheus.Desc }

func (r *descRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		r.descs = append(r.descs, d)
	}
	return nil
}

func (r *descRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *descRegisterer) Unregister(prometheus.Collector) bool { return false }

// descString is how client_golang prints a Desc; it has no accessor for the
// name and labels.
var descString = regexp.MustCompile(`^Desc\{fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)", help: .*, variableLabels: \{([^}]*)\}\}$`)

// gearboxMetrics returns the metrics the worker process registers (worker,
// quality loop, GPU telemetry), by the names a scrape shows (histograms as
// _bucket, _sum and _count), with their labels.
func gearboxMetrics(t *testing.T) map[string][]string {
	t.Helper()
	reg := &descRegisterer{}
	worker.NewMetrics(reg)
	quality.NewMetrics(reg)
	reg.MustRegister(gpumon.NewCollector())
	histograms := map[string]bool{}
	for _, n := range []string{"gearbox_batch_rows", "gearbox_queue_seconds", "gearbox_compute_seconds", "gearbox_quality_error"} {
		histograms[n] = true
	}
	out := map[string][]string{}
	for _, d := range reg.descs {
		m := descString.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s: client_golang's Desc.String changed", d)
		}
		name, ls := m[1], strings.Split(m[2], ",")
		if m[2] == "" {
			ls = nil
		}
		if !histograms[name] {
			out[name] = ls
			continue
		}
		out[name+"_bucket"] = append(append([]string{}, ls...), "le")
		out[name+"_sum"] = ls
		out[name+"_count"] = ls
	}
	for h := range histograms {
		if _, ok := out[h+"_bucket"]; !ok {
			t.Fatalf("the worker registers no histogram %s: update the list above", h)
		}
	}
	return out
}

// knownMetrics returns every metric name the rules and dashboard may read,
// with its labels.
func knownMetrics(t *testing.T) map[string][]string {
	t.Helper()
	known := gearboxMetrics(t)
	for name := range pending {
		if _, ok := known[name]; ok {
			t.Errorf("the worker now exports %s: take it off the pending list", name)
		}
	}
	for _, src := range []map[string][]string{natsExporter, pending, scrapeMetrics} {
		for n, ls := range src {
			known[n] = ls
		}
	}
	for n, ls := range known {
		known[n] = append(append([]string{}, ls...), targetLabels...)
	}
	return known
}

func TestGearboxMetrics(t *testing.T) {
	got := gearboxMetrics(t)
	// A few fixed points, so that a broken reader cannot pass as an empty list.
	for name, want := range map[string]string{
		"gearbox_jobs_completed_total":    "model,precision",
		"gearbox_quality_error_bucket":    "model,precision,role,metric,le",
		"gearbox_gpu_energy_joules_total": "gpu,uuid,name",
		"gearbox_inflight_rows":           "",
	} {
		if ls, ok := got[name]; !ok || strings.Join(ls, ",") != want {
			t.Errorf("%s labels = %v (registered: %v); want %s", name, ls, ok, want)
		}
	}
}

// queryParser parses queries as Prometheus does.
var queryParser = parser.NewParser(parser.Options{})

// checkQuery parses a PromQL query and returns the known metrics it reads
// and what in it names a metric or label that does not exist in known.
func checkQuery(q string, known map[string][]string) (used, errs []string) {
	expr, err := queryParser.ParseExpr(q)
	if err != nil {
		return nil, []string{fmt.Sprintf("%q: %v", q, err)}
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		names := matchNames(vs.LabelMatchers, known)
		if len(names) == 0 {
			errs = append(errs, fmt.Sprintf("%s: no such metric", vs))
			return nil
		}
		used = append(used, names...)
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				continue
			}
			for _, name := range names {
				if !contains(known[name], m.Name) {
					errs = append(errs, fmt.Sprintf("%s: %s has no label %s", vs, name, m.Name))
				}
			}
		}
		return nil
	})
	return used, errs
}

// matchNames returns the known metric names a selector's __name__ matchers
// select; none when it has no __name__ matcher.
func matchNames(ms []*labels.Matcher, known map[string][]string) []string {
	var byName []*labels.Matcher
	for _, m := range ms {
		if m.Name == labels.MetricName {
			byName = append(byName, m)
		}
	}
	if len(byName) == 0 {
		return nil
	}
	var out []string
	for name := range known {
		ok := true
		for _, m := range byName {
			ok = ok && m.Matches(name)
		}
		if ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestCheckQuery(t *testing.T) {
	known := map[string][]string{"a_total": {"model", "job"}, "b_total": {"model"}}
	for _, tc := range []struct {
		q    string
		errs int
	}{
		{`sum by (model) (rate(a_total{model="x"}[5m]))`, 0},
		{`rate({__name__=~"(a|b)_total", model="x"}[5m])`, 0},
		{`rate(c_total[5m])`, 1},
		{`a_total{code="x"}`, 1},
		{`{__name__=~"(a|b)_total", job="x"}`, 1}, // b_total has no job
		{`rate(a_total[5m]`, 1},
	} {
		if _, got := checkQuery(tc.q, known); len(got) != tc.errs {
			t.Errorf("checkQuery(%q) = %q; want %d findings", tc.q, got, tc.errs)
		}
	}
}
