// Package buildinfo says which build of gearbox is running — its module
// version, VCS revision and Go version — from what the Go toolchain records
// in every binary (runtime/debug.ReadBuildInfo), so no -ldflags are
// needed, and exports it as the gearbox_build_info metric.
//
// A binary built by "go build" in a git checkout records its revision
// (vcs.revision, and vcs.modified for uncommitted changes) and, since Go
// 1.24, a version derived from the revision's tag or a pseudo-version.
// "go run", "go test" and -buildvcs=false record none: Revision is then
// "unknown" and Version "(devel)".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info describes a build.
type Info struct {
	// Version is the main module's version: a tag, a pseudo-version, or
	// "(devel)".
	Version string
	// Revision is the VCS commit the binary was built from, or "unknown".
	Revision string
	// Modified reports uncommitted changes in the tree it was built from.
	Modified bool
	// GoVersion is the Go toolchain's version, e.g. "go1.26.8".
	GoVersion string
}

// Read returns this binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts an Info from what debug.ReadBuildInfo returns.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Version: bi.Main.Version, Revision: "unknown", GoVersion: bi.GoVersion}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	if i.GoVersion == "" {
		i.GoVersion = runtime.Version()
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				i.Revision = s.Value
			}
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String is the one-line description "gearbox version" prints.
func (i Info) String() string {
	rev := i.Revision
	if i.Modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("%s, revision %s, %s", i.Version, rev, i.GoVersion)
}

// Gauge returns the gearbox_build_info gauge: always 1, labelled with
// version, revision (with "-modified" appended for a modified tree) and
// goversion, as Prometheus' own *_build_info metrics are.
func (i Info) Gauge() prometheus.Gauge {
	rev := i.Revision
	if i.Modified {
		rev += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gearbox_build_info",
		Help:        "A metric with a constant '1' value labelled by the version, revision and Go version gearbox was built from.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": rev, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
