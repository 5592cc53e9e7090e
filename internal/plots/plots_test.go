package plots_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/internal/plots"
)

func TestWriteTimeline(t *testing.T) {
	tl := plots.Timeline{
		Title: "demo", Ladder: []string{"fp32", "tf32", "bf16", "fp8", "fp4"}, End: 8, Target: 0.25, Metric: "relative L2",
		Steps:  []plots.Step{{0, "fp32"}, {1.5, "tf32"}, {3.2, "bf16"}, {4.7, "fp8"}},
		Errors: []plots.Point{{1, 1e-6}, {2, 1e-3}, {4, 0.01}, {6, 0.04}, {7, 0}},
	}
	dir := t.TempDir()
	for _, name := range []string{"t.png", "t.svg"} {
		path := filepath.Join(dir, name)
		if err := plots.WriteTimeline(path, tl); err != nil {
			t.Fatal(err)
		}
		check(t, path)
	}
	if err := plots.WriteTimeline(filepath.Join(dir, "t.gif"), tl); err == nil || !strings.Contains(err.Error(), ".png or .svg") {
		t.Errorf("a .gif: err %v; want one naming the formats", err)
	}
}

func TestWriteBars(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.png")
	err := plots.WriteBars(path,
		plots.Bars{Title: "jobs/s", Labels: []string{"fp32", "bf16", "fp8"}, Values: []float64{100, 200, 300}},
		plots.Bars{Title: "error", Labels: []string{"fp32", "bf16", "fp8"}, Values: []float64{0, 1e-3, 4e-2}, Log: true})
	if err != nil {
		t.Fatal(err)
	}
	check(t, path)
}

// check reads the picture back: a PNG must decode to a sensible size, an
// SVG must be an svg document.
func check(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".svg") {
		if !bytes.Contains(data, []byte("<svg")) {
			t.Errorf("%s is not an SVG", path)
		}
		return
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
		t.Errorf("%s is %v; want a full-size picture", path, b)
	}
}

func TestWriteMix(t *testing.T) {
	ps := []string{"bf16", "fp8", "fp4"}
	mixes := []plots.Mix{
		{Title: "tight", Precisions: ps, Slices: []string{"0", "10", "20"}, Jobs: [][]float64{{5, 2, 0}, {0, 3, 5}, {0, 0, 0}}},
		{Title: "loose", Precisions: ps, Slices: []string{"0", "10", "20"}, Jobs: [][]float64{{5, 0, 0}, {0, 4, 0}, {0, 1, 6}}},
		{Title: "third", Precisions: ps[:1], Slices: []string{"0", "10", "20"}, Jobs: [][]float64{{1, 1, 1}}},
	}
	bars := plots.Bars{Title: "jobs/s", Labels: []string{"auto", "bf16"}, Values: []float64{3, 1}}
	path := filepath.Join(t.TempDir(), "m.png")
	if err := plots.WriteMix(path, mixes, bars); err != nil {
		t.Fatal(err)
	}
	check(t, path)
	bad := []plots.Mix{{Title: "short", Precisions: ps, Slices: []string{"0", "10"}, Jobs: [][]float64{{1, 2}}}}
	if err := plots.WriteMix(path, bad); err == nil || !strings.Contains(err.Error(), "fp8") {
		t.Errorf("a mix lacking fp8's jobs: err %v; want one naming fp8", err)
	}
}
