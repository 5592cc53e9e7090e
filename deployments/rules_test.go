package deployments

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
)

const rulesFile = "prometheus/gearbox-rules.yaml"

// loadRules parses the rules file with Prometheus's own parser, as
// `promtool check rules` does: unknown fields, bad PromQL and bad templates
// are errors.
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	rgs, errs := rulefmt.Parse(b, false, model.LegacyValidation, queryParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return rgs
}

func TestRules(t *testing.T) {
	known := knownMetrics(t)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("%s: a recording rule (%s): the rules file holds alerts only", g.Name, r.Record)
				continue
			}
			_, errs := checkQuery(r.Expr, known)
			for _, e := range errs {
				t.Errorf("%s: %s", r.Alert, e)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q; want critical, warning or info", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
		}
	}
}

// TestChartPrometheusRule checks that the chart's PrometheusRule holds the
// rules file's groups unchanged.
func TestChartPrometheusRule(t *testing.T) {
	prs := find[*monitoringv1.PrometheusRule](render(t, everyToggle))
	if len(prs) != 1 {
		t.Fatalf("got %d PrometheusRules; want 1", len(prs))
	}
	type rule struct{ Alert, Expr, For string }
	var got, want []rule
	for _, g := range prs[0].Spec.Groups {
		for _, r := range g.Rules {
			f := ""
			if r.For != nil {
				f = string(*r.For)
			}
			got = append(got, rule{g.Name + "/" + r.Alert, r.Expr.String(), f})
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			f := ""
			if r.For != 0 {
				f = r.For.String()
			}
			want = append(want, rule{g.Name + "/" + r.Alert, r.Expr, f})
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PrometheusRule rules =\n%v\nwant (from %s)\n%v", got, rulesFile, want)
	}
}

// alertCases are, for each alert, series on which it must fire at 60m and
// series on which it must not. Series are in promqltest's notation at one
// sample a minute ("0+10x60": 0, 10, …, 600).
var alertCases = map[string]struct{ fire, quiet []string }{
	"GearboxWorkerDown": {
		fire:  []string{`up{job="gearbox", instance="w1"} 1x30 0x30`},
		quiet: []string{`up{job="gearbox", instance="w1"} 1x60`},
	},
	"GearboxWorkerStalled": {
		fire: []string{`gearbox_inflight_rows{instance="w1"} 5x60`,
			`gearbox_jobs_completed_total{instance="w1", model="demo", precision="bf16"} 100x60`},
		quiet: []string{`gearbox_inflight_rows{instance="w1"} 5x60`,
			`gearbox_jobs_completed_total{instance="w1", model="demo", precision="bf16"} 0+100x60`},
	},
	"GearboxInternalErrors": {
		fire:  []string{`gearbox_jobs_failed_total{model="demo", code="internal"} 0+1x60`},
		quiet: []string{`gearbox_jobs_failed_total{model="demo", code="internal"} 3x60`},
	},
	"GearboxJobsRejected": {
		fire: []string{`gearbox_jobs_failed_total{model="demo", code="bad_request"} 0+10x60`,
			`gearbox_jobs_completed_total{model="demo", precision="bf16"} 0+100x60`},
		quiet: []string{`gearbox_jobs_failed_total{model="demo", code="bad_request"} 0+1x60`,
			`gearbox_jobs_completed_total{model="demo", precision="bf16"} 0+100x60`},
	},
	"GearboxAnswersRetrying": {
		fire:  []string{`gearbox_answers_retrying{instance="w1"} 3x60`},
		quiet: []string{`gearbox_answers_retrying{instance="w1"} 0x60`},
	},
	"GearboxJobsRedelivered": {
		fire:  []string{`gearbox_jobs_redelivered_total 0+5x60`, `gearbox_jobs_received_total{model="demo"} 0+100x60`},
		quiet: []string{`gearbox_jobs_redelivered_total 0x60`, `gearbox_jobs_received_total{model="demo"} 0+100x60`},
	},
	"GearboxBacklogGrowing": {
		fire: []string{
			`nats_consumer_num_pending{stream_name="GEARBOX_JOBS", consumer_name="gearbox-workers", is_consumer_leader="true"} 100+10x60`,
			`nats_consumer_num_pending{stream_name="GEARBOX_JOBS", consumer_name="gearbox-workers", is_consumer_leader="false"} 0x60`,
			`nats_consumer_num_ack_pending{stream_name="GEARBOX_JOBS", consumer_name="gearbox-workers", is_consumer_leader="true"} 500x60`},
		quiet: []string{ // a backlog that drains
			`nats_consumer_num_pending{stream_name="GEARBOX_JOBS", consumer_name="gearbox-workers", is_consumer_leader="true"} 1000-10x60`,
			`nats_consumer_num_ack_pending{stream_name="GEARBOX_JOBS", consumer_name="gearbox-workers", is_consumer_leader="true"} 500x60`},
	},
	"GearboxConsumerMissing": {
		fire: []string{`nats_stream_total_messages{stream_name="GEARBOX_JOBS"} 10x60`},
		quiet: []string{`nats_stream_total_messages{stream_name="GEARBOX_JOBS"} 10x60`,
			`nats_consumer_num_pending{stream_name="GEARBOX_JOBS", consumer_name="gearbox-workers"} 10x60`},
	},
	"GearboxQueueTimeHigh": {
		fire: []string{`gearbox_queue_seconds_bucket{model="demo", le="30"} 0x60`,
			`gearbox_queue_seconds_bucket{model="demo", le="120"} 0+10x60`,
			`gearbox_queue_seconds_bucket{model="demo", le="+Inf"} 0+10x60`},
		quiet: []string{`gearbox_queue_seconds_bucket{model="demo", le="30"} 0+10x60`,
			`gearbox_queue_seconds_bucket{model="demo", le="120"} 0+10x60`,
			`gearbox_queue_seconds_bucket{model="demo", le="+Inf"} 0+10x60`},
	},
	"GearboxQualityAtCeiling": {
		fire: []string{`gearbox_policy_hold{model="demo", reason="ceiling"} 1x60`,
			`gearbox_policy_hold{model="demo", reason="margin"} 0x60`},
		quiet: []string{`gearbox_policy_hold{model="demo", reason="ceiling"} 0x60`,
			`gearbox_policy_hold{model="demo", reason="margin"} 1x60`},
	},
	"GearboxPrecisionRuledOut": {
		fire:  []string{`gearbox_policy_excluded{model="demo", precision="fp8"} 1x60`},
		quiet: []string{`gearbox_policy_excluded{model="demo", precision="fp8"} 0x60`},
	},
	"GearboxQualityChecksFailing": {
		fire:  []string{`gearbox_quality_checks_total{model="demo", outcome="failed"} 0+1x60`},
		quiet: []string{`gearbox_quality_checks_total{model="demo", outcome="failed"} 2x60`},
	},
	"GearboxPolicyFlapping": {
		fire:  []string{`gearbox_policy_changes_total{model="demo", direction="down"} 0+1x60`},
		quiet: []string{`gearbox_policy_changes_total{model="demo", direction="down"} 0+0.05x60`},
	},
	"GearboxGPUTelemetryFailing": {
		fire:  []string{`gearbox_gpu_up{gpu="0", uuid="GPU-1", name="H100"} 0x60`},
		quiet: []string{`gearbox_gpu_up{gpu="0", uuid="GPU-1", name="H100"} 1x60`},
	},
	"GearboxGPUMemoryFull": {
		fire: []string{`gearbox_gpu_memory_used_bytes{gpu="0"} 79e9x60`,
			`gearbox_gpu_memory_total_bytes{gpu="0"} 80e9x60`},
		quiet: []string{`gearbox_gpu_memory_used_bytes{gpu="0"} 40e9x60`,
			`gearbox_gpu_memory_total_bytes{gpu="0"} 80e9x60`},
	},
}

// TestAlertsFire evaluates every alert's expression with Prometheus's engine
// on series that should fire it and on series that should not.
func TestAlertsFire(t *testing.T) {
	engine := newEngine()
	at := time.Unix(0, 0).Add(60 * time.Minute)
	eval := func(t *testing.T, expr string, series []string) promql.Vector {
		t.Helper()
		st, err := loadSeries(series)
		if err != nil {
			t.Fatal(err)
		}
		q, err := engine.NewInstantQuery(context.Background(), st, nil, expr, at)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		v, err := res.Vector()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var names []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			tc, ok := alertCases[r.Alert]
			if !ok {
				t.Errorf("%s: no case in alertCases: add series that fire it and series that do not", r.Alert)
				continue
			}
			t.Run(r.Alert, func(t *testing.T) {
				if v := eval(t, r.Expr, tc.fire); len(v) == 0 {
					t.Errorf("does not fire on %q", tc.fire)
				}
				if v := eval(t, r.Expr, tc.quiet); len(v) != 0 {
					t.Errorf("fires on %q: %v", tc.quiet, v)
				}
			})
		}
	}
	sort.Strings(names)
	for a := range alertCases {
		if i := sort.SearchStrings(names, a); i == len(names) || names[i] != a {
			t.Errorf("alertCases has %s, which the rules file does not", a)
		}
	}
}
