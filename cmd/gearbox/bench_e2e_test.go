package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/e2e"
)

func TestBenchE2E(t *testing.T) {
	cfg := &config{Device: "cpu", Prefix: "gearbox", MaxBatchRows: 16}
	out := filepath.Join(t.TempDir(), "e2e.json")
	err := benchE2E(context.Background(), cfg, zerolog.Nop(), []string{
		"--dims", "8,16,4", "--precisions", "fp32", "--jobs", "40", "--rows", "2", "--reps", "1", "--json", out,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep e2e.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	if rep.Device != "cpu" || rep.Jobs != 40 || rep.MaxBatchRows != 16 || len(rep.Results) != 1 ||
		rep.Results[0].Precision != "fp32" || rep.Results[0].Worker.JobsPerSec <= 0 || rep.Results[0].Bare.JobsPerSec <= 0 {
		t.Errorf("report %s; want one fp32 result on cpu, 40 jobs, batches of 16", b)
	}
}

func TestBenchE2EFlags(t *testing.T) {
	cfg := &config{Device: "cpu", Prefix: "gearbox", MaxBatchRows: 16}
	for _, args := range [][]string{
		{"--precisions", "auto"},
		{"--precisions", "fp9"},
		{"--dims", "8"},
	} {
		if err := benchE2E(context.Background(), cfg, zerolog.Nop(), args); err == nil {
			t.Errorf("bench e2e %v: no error", args)
		}
	}
}
