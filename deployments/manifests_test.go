package deployments

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
)

// manifests are the plain manifests in kubernetes/ and the objects each
// holds. nats-values.yaml is not a manifest but values for the NATS chart.
var manifests = map[string][]string{
	"keda.yaml":   {"ScaledObject/gearbox-worker"},
	"worker.yaml": {"ConfigMap/gearbox-config", "Deployment/gearbox-worker", "PodDisruptionBudget/gearbox-worker"},
}

func TestManifests(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "nats-values.yaml" {
			continue
		}
		want, ok := manifests[base]
		if !ok {
			t.Errorf("%s: not listed in manifests", f)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(f, b)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		got := kinds(objs)
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: objects = %v; want %v", f, got, want)
		}
		for _, d := range find[*appsv1.Deployment](objs) {
			pod := &d.Spec.Template
			if errs := checkPod(&pod.ObjectMeta, &pod.Spec); len(errs) > 0 {
				t.Errorf("%s: Deployment %s:%s", f, d.Name, joinErrs(errs))
			}
			for _, c := range pod.Spec.Containers {
				if errs := checkProbes(c); len(errs) > 0 {
					t.Errorf("%s: Deployment %s:%s", f, d.Name, joinErrs(errs))
				}
			}
		}
		for _, so := range find[*kedav1alpha1.ScaledObject](objs) {
			if errs := checkScaledObject(so); len(errs) > 0 {
				t.Errorf("%s: ScaledObject %s:%s", f, so.Name, joinErrs(errs))
			}
			if so.Spec.ScaleTargetRef.Name != "gearbox-worker" {
				t.Errorf("%s: ScaledObject scales %s; want gearbox-worker (worker.yaml)", f, so.Spec.ScaleTargetRef.Name)
			}
		}
	}
	for name := range manifests {
		if _, err := os.Stat(filepath.Join("kubernetes", name)); err != nil {
			t.Errorf("manifests lists %s: %v", name, err)
		}
	}
}

// TestDecodeStrict checks that the decoder refuses what the API server's
// strict field validation refuses.
func TestDecodeStrict(t *testing.T) {
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"valid", cm + "data: {a: b}\n", true},
		{"unknown field", cm + "dat: {a: b}\n", false},
		{"duplicate field", cm + "data: {a: b}\ndata: {c: d}\n", false},
		{"wrong type", cm + "data: [a]\n", false},
		{"wrong case", cm + "Data: {a: b}\n", false},
		{"unknown kind", "apiVersion: v1\nkind: Nothing\nmetadata: {name: x}\n", false},
		{"unknown ScaledObject field", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: y}, triggers: [{type: cpu, metadata: {}}], minReplicas: 1}\n", false},
		{"only comments", "# nothing\n", true},
	} {
		_, err := decodeAll(tc.name, []byte(tc.doc))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
}
