package deployments

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/runtime"
)

const chartDir = "helm/gearbox"

// release is what `helm install gearbox --namespace inference` passes.
var release = common.ReleaseOptions{Name: "gearbox", Namespace: "inference", IsInstall: true, Revision: 1}

// renderChart renders the chart as `helm template` does, with values
// (YAML, as a -f file) over the chart's defaults, and returns the manifests
// by template path. The engine is strict: a template that reads a value
// missing from values.yaml fails.
func renderChart(t *testing.T, values string) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	vals, err := common.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("values %q: %v", values, err)
	}
	top, err := util.ToRenderValues(ch, vals, release, nil)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.Render(ch, top)
}

// render renders the chart with values and decodes every object strictly.
func render(t *testing.T, values string) []runtime.Object {
	t.Helper()
	out, err := renderChart(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	paths := make([]string, 0, len(out))
	for p := range out {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var objs []runtime.Object
	for _, p := range paths {
		if strings.HasSuffix(p, "NOTES.txt") {
			continue
		}
		o, err := decodeAll(p, []byte(out[p]))
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		objs = append(objs, o...)
	}
	return objs
}

// Values for the chart's cases.
const (
	cpuOnly = "gpu: {enabled: false}\n"
	// everyToggle turns on every optional object, a credentials file and
	// mutual TLS.
	everyToggle = `
keda:
  enabled: true
  minReplicaCount: 0
  fallback: {replicas: 2, failureThreshold: 3}
serviceMonitor: {enabled: true, labels: {release: prometheus}}
prometheusRule: {enabled: true, labels: {release: prometheus}}
podDisruptionBudget: {enabled: true}
nats:
  url: tls://nats.inference.svc:4222
  auth: {secretName: gearbox-nats, credsKey: worker.creds}
  tls:
    secretName: gearbox-nats-tls
imagePullSecrets: [{name: registry}]
podAnnotations: {team: ml}
podLabels: {tier: gpu}
priorityClassName: gpu-batch
extraVolumes: [{name: models, persistentVolumeClaim: {claimName: models, readOnly: true}}]
extraVolumeMounts: [{name: models, mountPath: /models, readOnly: true}]
env: {GEARBOX_MODELS: /models}
`
)

func TestChartObjects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values string
		want   []string
	}{
		{"defaults", "", []string{"ConfigMap/gearbox", "Deployment/gearbox", "PodDisruptionBudget/gearbox", "Service/gearbox"}},
		{"cpu only", cpuOnly, []string{"ConfigMap/gearbox", "Deployment/gearbox", "PodDisruptionBudget/gearbox", "Service/gearbox"}},
		{"every toggle", everyToggle, []string{"ConfigMap/gearbox", "Deployment/gearbox", "PodDisruptionBudget/gearbox",
			"PrometheusRule/gearbox", "ScaledObject/gearbox", "Service/gearbox", "ServiceMonitor/gearbox"}},
		{"no pdb", "podDisruptionBudget: {enabled: false}", []string{"ConfigMap/gearbox", "Deployment/gearbox", "Service/gearbox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kinds(render(t, tc.values))
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("objects = %v; want %v", got, tc.want)
			}
		})
	}
}

// TestChartRefuses checks that bad values fail the render with an error that
// names the value at fault.
func TestChartRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"misspelt key", "kead: {enabled: true}", "kead"},
		{"misspelt nested key", "keda: {enable: true}", "enable"},
		{"number in env", "env: {GEARBOX_REPLICAS: 3}", "GEARBOX_REPLICAS"},
		{"not a GEARBOX_ setting", "env: {NATS_URL: x}", "NATS_URL"},
		{"chart-owned setting", "env: {GEARBOX_DEVICE: auto}", "env.GEARBOX_DEVICE"},
		{"chart-owned credentials", "env: {GEARBOX_NATS_PASSWORD: x}", "env.GEARBOX_NATS_PASSWORD"},
		{"latest tag", "image: {tag: latest}", "tag"},
		{"bad device", "gpu: {device: cuda0}", "device"},
		{"creds without secret", "nats: {auth: {credsKey: worker.creds}}", "nats.auth.secretName"},
		{"two ways to authenticate", "nats: {auth: {secretName: s, credsKey: c, tokenKey: t}}", "nats.auth: set one way"},
		{"user without password", "nats: {auth: {secretName: s, userKey: user}}", "nats.auth.passwordKey"},
		{"cert without key", "nats: {tls: {secretName: s, keyKey: ''}}", "nats.tls.keyKey"},
		{"tls secret naming nothing", "nats: {tls: {secretName: s, caKey: '', certKey: '', keyKey: ''}}", "nats.tls.secretName"},
		{"keda max below min", "keda: {enabled: true, minReplicaCount: 4, maxReplicaCount: 2}", "keda.maxReplicaCount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(t, tc.values)
			if err == nil {
				t.Fatalf("render with %q succeeded; want an error naming %q", tc.values, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render with %q: error %q does not name %q", tc.values, err, tc.want)
			}
		})
	}
}

// TestChartLint runs `helm lint --strict` through the SDK: any finding above
// "info" fails.
func TestChartLint(t *testing.T) {
	for _, values := range []string{"", everyToggle} {
		vals, err := common.ReadValues([]byte(values))
		if err != nil {
			t.Fatal(err)
		}
		res := lint.RunAll(chartDir, vals, release.Namespace)
		for _, m := range res.Messages {
			if m.Severity > support.InfoSev {
				t.Errorf("helm lint: %s", m)
			}
		}
	}
}

// TestChartRulesFile checks that the chart's copy of the rules is the link to
// prometheus/gearbox-rules.yaml, so that there is one file to edit.
func TestChartRulesFile(t *testing.T) {
	link := filepath.Join(chartDir, "files", "gearbox-rules.yaml")
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("%s: %v; want a symbolic link to %s", link, err, rulesFile)
	}
	if got, want := filepath.Clean(filepath.Join(filepath.Dir(link), target)), filepath.Clean(rulesFile); got != want {
		t.Errorf("%s links to %s; want %s", link, got, want)
	}
}
