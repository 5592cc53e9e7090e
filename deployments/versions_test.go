package deployments

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// TestNATSVersions checks that compose.yaml and the NATS chart's values run
// the NATS server release the embedded server is (go.mod's nats-server).
func TestNATSVersions(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.Parse("../go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var embedded string
	for _, r := range mf.Require {
		if r.Mod.Path == "github.com/nats-io/nats-server/v2" {
			embedded = strings.TrimPrefix(r.Mod.Version, "v")
		}
	}
	if embedded == "" {
		t.Fatal("../go.mod does not require github.com/nats-io/nats-server/v2")
	}
	want := embedded + "-alpine"

	compose := readYAML[struct {
		Services map[string]struct{ Image string }
	}](t, "compose.yaml")
	if got := compose.Services["nats"].Image; got != "nats:"+want {
		t.Errorf("compose.yaml: nats image %s; want nats:%s (go.mod's nats-server)", got, want)
	}
	values := readYAML[struct {
		Container struct{ Image struct{ Tag string } }
	}](t, "kubernetes/nats-values.yaml")
	if got := values.Container.Image.Tag; got != want {
		t.Errorf("kubernetes/nats-values.yaml: container.image.tag %s; want %s (go.mod's nats-server)", got, want)
	}
}

// natsChartInstall is a `helm install` or `helm upgrade --install` of the
// NATS chart, with what follows on its line.
var natsChartInstall = regexp.MustCompile(`helm (?:upgrade --install|install) \S+ nats/nats\b(.*)`)

var versionFlag = regexp.MustCompile(`--version[ =](\S+)`)

// TestNATSChartPinned checks that every install of the NATS chart in the
// docs and deployment files names the same chart version.
func TestNATSChartPinned(t *testing.T) {
	versions := map[string][]string{}
	for _, f := range []string{"README.md", "kubernetes/nats-values.yaml", "../docs/operations.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range natsChartInstall.FindAllStringSubmatch(string(b), -1) {
			v := versionFlag.FindStringSubmatch(m[1])
			if v == nil {
				t.Errorf("%s: %q does not pin the chart with --version", f, m[0])
				continue
			}
			versions[v[1]] = append(versions[v[1]], f)
		}
	}
	if len(versions) != 1 {
		t.Errorf("NATS chart versions installed: %v; want one version, pinned everywhere", versions)
	}
	for v := range versions {
		if !strings.HasPrefix(v, "2.") {
			t.Errorf("NATS chart version %s; the values are for chart 2.x", v)
		}
	}
}
