package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want Info
	}{
		{"go build in a clean checkout",
			debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4471c74f"}, {Key: "vcs.modified", Value: "false"}}},
			Info{Version: "v1.2.3", Revision: "4471c74f", GoVersion: "go1.26.8"}},
		{"modified tree",
			debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20260101000000-4471c74f0000+dirty"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4471c74f"}, {Key: "vcs.modified", Value: "true"}}},
			Info{Version: "v0.0.0-20260101000000-4471c74f0000+dirty", Revision: "4471c74f", Modified: true, GoVersion: "go1.26.8"}},
		{"go run: nothing stamped",
			debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			Info{Version: "(devel)", Revision: "unknown", GoVersion: "go1.26.8"}},
		{"empty", debug.BuildInfo{}, Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromBuildInfo(&tt.bi); got != tt.want {
				t.Errorf("FromBuildInfo = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestReadThisBinary(t *testing.T) {
	i := Read()
	if i.GoVersion != runtime.Version() || i.Version == "" || i.Revision == "" {
		t.Errorf("Read() = %+v; want this toolchain's version and non-empty fields", i)
	}
	if s := i.String(); !strings.Contains(s, i.GoVersion) || !strings.Contains(s, i.Version) {
		t.Errorf("String() = %q; want the versions in it", s)
	}
}

func TestGauge(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Info{Version: "v1.2.3", Revision: "abc", Modified: true, GoVersion: "go1.26.8"}.Gauge())
	want := `# HELP gearbox_build_info A metric with a constant '1' value labelled by the version, revision and Go version gearbox was built from.
# TYPE gearbox_build_info gauge
gearbox_build_info{goversion="go1.26.8",revision="abc-modified",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
