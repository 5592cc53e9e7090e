package main

import (
	"path/filepath"
	"testing"

	"github.com/gearbox-inference/gearbox/internal/e2e"
)

func TestBenchE2E(t *testing.T) {
	out, plot := filepath.Join(t.TempDir(), "e2e.json"), filepath.Join(t.TempDir(), "e2e.png")
	env := []string{"GEARBOX_DEVICE=cpu", "GEARBOX_MAX_BATCH_ROWS=16", "GEARBOX_LOG_LEVEL=warn"}
	// Flags after the positional-free command, Go-style single dashes too.
	if code, _, stderr := runCLI(t, env, "bench", "e2e", "--dims", "8,16,4", "-precisions", "fp32", "--jobs", "40", "--rows", "2", "--reps", "1", "--json", out, "--plot", plot); code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	var rep e2e.Report
	b := readJSON(t, out, &rep)
	if rep.Device != "cpu" || rep.Jobs != 40 || rep.MaxBatchRows != 16 || len(rep.Results) != 1 ||
		rep.Results[0].Precision != "fp32" || rep.Results[0].Worker.JobsPerSec <= 0 || rep.Results[0].Bare.JobsPerSec <= 0 {
		t.Errorf("report %s; want one fp32 result on cpu, 40 jobs, batches of 16 (GEARBOX_MAX_BATCH_ROWS)", b)
	}
	checkPNG(t, plot)
}

func TestBenchE2EFlags(t *testing.T) {
	env := []string{"GEARBOX_DEVICE=cpu"}
	for _, args := range [][]string{
		{"--precisions", "auto"},
		{"--precisions", "fp9"},
		{"--dims", "8"},
	} {
		if code, _, _ := runCLI(t, env, append([]string{"bench", "e2e"}, args...)...); code != 1 {
			t.Errorf("bench e2e %v: exit status %d; want 1", args, code)
		}
	}
}
