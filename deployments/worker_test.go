package deployments

import (
	"os"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/gearbox-inference/gearbox"
)

// workerParts returns the single Deployment, its worker container and the
// ConfigMap it reads its environment from.
func workerParts(t *testing.T, objs []runtime.Object) (*appsv1.Deployment, corev1.Container, map[string]string) {
	t.Helper()
	deps := find[*appsv1.Deployment](objs)
	cms := find[*corev1.ConfigMap](objs)
	if len(deps) != 1 || len(cms) != 1 {
		t.Fatalf("got %d Deployments and %d ConfigMaps; want one of each", len(deps), len(cms))
	}
	d := deps[0]
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment has %d containers; want 1", n)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cms[0].Name {
		t.Fatalf("container envFrom = %+v; want the ConfigMap %s", c.EnvFrom, cms[0].Name)
	}
	return d, c, cms[0].Data
}

func TestChartWorkerPod(t *testing.T) {
	chart := readYAML[struct{ AppVersion string }](t, chartDir+"/Chart.yaml")
	for _, tc := range []struct {
		name   string
		values string
		gpu    bool
	}{
		{"defaults", "", true},
		{"cpu only", cpuOnly, false},
		{"every toggle", everyToggle, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, c, env := workerParts(t, render(t, tc.values))
			pod := &d.Spec.Template
			if errs := checkPod(&pod.ObjectMeta, &pod.Spec); len(errs) > 0 {
				t.Errorf("pod:%s", joinErrs(errs))
			}
			if errs := checkProbes(c); len(errs) > 0 {
				t.Errorf("probes:%s", joinErrs(errs))
			}
			if want := "ghcr.io/gearbox-inference/gearbox:" + chart.AppVersion; c.Image != want {
				t.Errorf("image = %s; want %s (the tag pinned to Chart.yaml's appVersion)", c.Image, want)
			}

			gpus := c.Resources.Limits["nvidia.com/gpu"]
			tolerates := len(pod.Spec.Tolerations) > 0 && pod.Spec.Tolerations[0].Key == "nvidia.com/gpu"
			wantDevice := map[bool]string{true: "cuda:0", false: "cpu"}[tc.gpu]
			if got := gpus.Value() == 1; got != tc.gpu {
				t.Errorf("nvidia.com/gpu limit = %s; want one GPU: %v", gpus.String(), tc.gpu)
			}
			if tolerates != tc.gpu {
				t.Errorf("tolerates the GPU taint: %v; want %v", tolerates, tc.gpu)
			}
			if env["GEARBOX_DEVICE"] != wantDevice {
				t.Errorf("GEARBOX_DEVICE = %q; want %q", env["GEARBOX_DEVICE"], wantDevice)
			}

			// Every file setting points at a file the pod mounts from a Secret.
			for _, k := range []string{"GEARBOX_NATS_CREDS", "GEARBOX_NATS_NKEY_SEED", "GEARBOX_NATS_CA", "GEARBOX_NATS_CERT", "GEARBOX_NATS_KEY", "GEARBOX_CUDA_CACHE", "CUDA_CACHE_PATH"} {
				if p, ok := env[k]; ok && !podHasFile(pod.Spec, c, p) {
					t.Errorf("%s = %s: no Secret item or emptyDir provides it", k, p)
				}
			}

			shutdown, err := time.ParseDuration(env["GEARBOX_SHUTDOWN_TIMEOUT"])
			if err != nil {
				t.Fatalf("GEARBOX_SHUTDOWN_TIMEOUT: %v", err)
			}
			// The graceful stop is bounded by the timeout plus 10 s of NATS drain.
			if grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second; shutdown+10*time.Second > grace {
				t.Errorf("GEARBOX_SHUTDOWN_TIMEOUT %v + 10s drain > terminationGracePeriodSeconds %v", shutdown, grace)
			}
			if addr := env["GEARBOX_METRICS_ADDR"]; addr != ":9464" {
				t.Errorf("GEARBOX_METRICS_ADDR = %q; want :9464 (the probes' and Service's port)", addr)
			}
		})
	}
}

// podHasFile reports whether file in container c comes from a Secret item or
// lies in an emptyDir.
func podHasFile(spec corev1.PodSpec, c corev1.Container, file string) bool {
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path.Clean(file), path.Clean(vm.MountPath)+"/")
		if !ok {
			continue
		}
		v := vols[vm.Name]
		if v.EmptyDir != nil {
			return true
		}
		if v.Secret != nil {
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return true
				}
			}
		}
	}
	return false
}

// TestChartSecrets checks each way to authenticate: files are mounted from
// the Secret at the path the setting names, values come from the Secret.
func TestChartSecrets(t *testing.T) {
	const tls = "  tls: {secretName: gearbox-nats-tls}\n"
	for _, tc := range []struct {
		name, auth string
		files      []string          // settings that name a mounted file
		refs       map[string]string // settings read from the Secret: Secret/key
	}{
		{"none", "", nil, nil},
		{"creds", "{secretName: gearbox-nats, credsKey: worker.creds}", []string{"GEARBOX_NATS_CREDS"}, nil},
		{"nkey", "{secretName: gearbox-nats, nkeySeedKey: worker.nk}", []string{"GEARBOX_NATS_NKEY_SEED"}, nil},
		{"user and password", "{secretName: gearbox-nats, userKey: user, passwordKey: password}", nil,
			map[string]string{"GEARBOX_NATS_USER": "gearbox-nats/user", "GEARBOX_NATS_PASSWORD": "gearbox-nats/password"}},
		{"token", "{secretName: gearbox-nats, tokenKey: token}", nil, map[string]string{"GEARBOX_NATS_TOKEN": "gearbox-nats/token"}},
	} {
		for _, withTLS := range []bool{false, true} {
			values := ""
			if tc.auth != "" {
				values += "  auth: " + tc.auth + "\n"
			}
			files := tc.files
			if withTLS {
				values += tls
				files = append(append([]string{}, files...), "GEARBOX_NATS_CA", "GEARBOX_NATS_CERT", "GEARBOX_NATS_KEY")
			}
			if values != "" {
				values = "nats:\n" + values
			}
			d, c, env := workerParts(t, render(t, values))
			var got []string
			for k := range env {
				if strings.HasPrefix(k, "GEARBOX_NATS_") && k != "GEARBOX_NATS_URL" {
					got = append(got, k)
				}
			}
			refs := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					refs[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				}
			}
			sort.Strings(got)
			sort.Strings(files)
			if strings.Join(got, " ") != strings.Join(files, " ") {
				t.Errorf("%s, TLS %v: ConfigMap sets %v; want %v", tc.name, withTLS, got, files)
			}
			for _, k := range files {
				if !podHasFile(d.Spec.Template.Spec, c, env[k]) {
					t.Errorf("%s, TLS %v: %s = %s: no Secret item provides it", tc.name, withTLS, k, env[k])
				}
			}
			if len(refs) != len(tc.refs) {
				t.Errorf("%s, TLS %v: settings from the Secret %v; want %v", tc.name, withTLS, refs, tc.refs)
			}
			for k, want := range tc.refs {
				if refs[k] != want {
					t.Errorf("%s, TLS %v: %s from %q; want %q", tc.name, withTLS, k, refs[k], want)
				}
			}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0) {
					t.Errorf("%s: Secret volume %s is readable by others (defaultMode %v)", tc.name, v.Name, v.Secret.DefaultMode)
				}
			}
		}
	}
}

// TestChartScaledObject checks that KEDA scales on the stream and consumer
// the worker uses, for the default prefix and one with dots and dashes, and
// that KEDA, not the Deployment, owns the replica count.
func TestChartScaledObject(t *testing.T) {
	for _, prefix := range []string{"gearbox", "acme.prod-1"} {
		objs := render(t, everyToggle+"prefix: "+prefix+"\n")
		sos := find[*kedav1alpha1.ScaledObject](objs)
		if len(sos) != 1 || len(sos[0].Spec.Triggers) != 1 {
			t.Fatalf("prefix %s: want one ScaledObject with one trigger; got %v", prefix, kinds(objs))
		}
		so := sos[0]
		if errs := checkScaledObject(so); len(errs) > 0 {
			t.Errorf("prefix %s: ScaledObject:%s", prefix, joinErrs(errs))
		}
		subj, err := gearbox.NewSubjects(prefix)
		if err != nil {
			t.Fatal(err)
		}
		md := so.Spec.Triggers[0].Metadata
		if md["stream"] != subj.JobsStream() || md["consumer"] != subj.Consumer() {
			t.Errorf("prefix %s: trigger reads %s/%s; the worker uses %s/%s", prefix, md["stream"], md["consumer"], subj.JobsStream(), subj.Consumer())
		}
		if want := "nats-headless.inference.svc.cluster.local:8222"; md["natsServerMonitoringEndpoint"] != want {
			t.Errorf("monitoring endpoint = %s; want %s", md["natsServerMonitoringEndpoint"], want)
		}
		d, _, env := workerParts(t, objs)
		if env["GEARBOX_PREFIX"] != prefix {
			t.Errorf("GEARBOX_PREFIX = %q; want %q", env["GEARBOX_PREFIX"], prefix)
		}
		if so.Spec.ScaleTargetRef.Name != d.Name {
			t.Errorf("ScaledObject scales %s; want the Deployment %s", so.Spec.ScaleTargetRef.Name, d.Name)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment sets replicas %d while KEDA owns the count", *d.Spec.Replicas)
		}
		if so.Spec.Fallback == nil || so.Spec.Fallback.Replicas != 2 {
			t.Errorf("fallback = %+v; want 2 replicas", so.Spec.Fallback)
		}
	}
}

// readYAML decodes a YAML file into T, failing on fields T lacks only when T
// says so; it is for reading a few fields of a file.
func readYAML[T any](t *testing.T, file string) T {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}
