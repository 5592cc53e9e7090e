package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/internal/e2e"
)

func TestBenchE2E(t *testing.T) {
	out, plot := filepath.Join(t.TempDir(), "e2e.json"), filepath.Join(t.TempDir(), "e2e.png")
	env := []string{"GEARBOX_DEVICE=cpu", "GEARBOX_MAX_BATCH_ROWS=16", "GEARBOX_LOG_LEVEL=warn"}
	// Flags after the positional-free command, Go-style single dashes too.
	if code, _, stderr := runCLI(t, env, "bench", "e2e", "--dims", "8,16,4", "-precisions", "fp32", "--jobs", "40", "--rows", "2", "--reps", "1", "--raw-streams", "2", "--json", out, "--plot", plot); code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	var rep e2e.Report
	b := readJSON(t, out, &rep)
	if rep.Device != "cpu" || rep.Jobs != 40 || rep.MaxBatchRows != 16 || len(rep.Results) != 1 ||
		rep.Results[0].Precision != "fp32" || rep.Results[0].Worker.JobsPerSec <= 0 || rep.Results[0].Bare.JobsPerSec <= 0 {
		t.Errorf("report %s; want one fp32 result on cpu, 40 jobs, batches of 16 (GEARBOX_MAX_BATCH_ROWS)", b)
	}
	if r := rep.Results[0]; r.Raw == nil || r.Raw.JobsPerSec <= 0 || r.WorkerOverRaw <= 0 {
		t.Errorf("report %s; want the raw side (on by default) with jobs/s and worker/raw", b)
	}
	if r := rep.Results[0]; rep.RawStreams != 2 || r.RawStreams == nil || r.RawStreams.JobsPerSec <= 0 {
		t.Errorf("report %s; want --raw-streams 2's raw side with jobs/s", b)
	}
	if rep.InputDType != "f32" || rep.OutputDType != "f32" {
		t.Errorf("report %s; want f32 in and out by default", b)
	}
	checkPNG(t, plot)
}

// --trace and --cpuprofile write one file per timed worker repetition;
// --raw=false leaves the raw side out; --input-dtype and --output-dtype
// reach the report.
func TestBenchE2ETraceProfile(t *testing.T) {
	dir := t.TempDir()
	out, trace, prof := filepath.Join(dir, "e2e.json"), filepath.Join(dir, "w.trace"), filepath.Join(dir, "w.pprof")
	env := []string{"GEARBOX_DEVICE=cpu", "GEARBOX_MAX_BATCH_ROWS=16", "GEARBOX_LOG_LEVEL=warn"}
	if code, _, stderr := runCLI(t, env, "bench", "e2e", "--dims", "8,16,4", "--precisions", "fp32,bf16", "--jobs", "40", "--rows", "2",
		"--reps", "2", "--raw=false", "--input-dtype", "bf16", "--output-dtype", "f16", "--trace", trace, "--cpuprofile", prof, "--json", out); code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	var rep e2e.Report
	b := readJSON(t, out, &rep)
	for _, r := range rep.Results {
		if r.Raw != nil || r.WorkerOverRaw != 0 {
			t.Errorf("report %s; want no raw side with --raw=false", b)
		}
	}
	if rep.InputDType != "bf16" || rep.OutputDType != "f16" {
		t.Errorf("report %s; want bf16 in, f16 out", b)
	}
	var got []string
	for _, name := range []string{"w-fp32-1", "w-fp32-2", "w-bf16-1", "w-bf16-2"} {
		for _, ext := range []string{".trace", ".pprof"} {
			st, err := os.Stat(filepath.Join(dir, name+ext))
			if err != nil || st.Size() == 0 {
				t.Errorf("%s%s: %v; want a non-empty file", name, ext, err)
			}
			got = append(got, name+ext)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != len(got)+1 {
		t.Errorf("%d files in %s; want %v and e2e.json", len(ents), dir, got)
	}
}

func TestBenchE2EFlags(t *testing.T) {
	env := []string{"GEARBOX_DEVICE=cpu"}
	for _, args := range [][]string{
		{"--precisions", "auto"},
		{"--precisions", "fp9"},
		{"--dims", "8"},
		{"--input-dtype", "f8"},
		{"--output-dtype", "fp16"},
		{"--raw-streams", "0"},
		{"--raw=false", "--raw-streams", "2"},
	} {
		code, _, stderr := runCLI(t, env, append([]string{"bench", "e2e"}, args...)...)
		if code != 1 {
			t.Errorf("bench e2e %v: exit status %d; want 1", args, code)
		}
		if args[len(args)-2] == "--raw-streams" && !strings.Contains(stderr, "--raw-streams: "+args[len(args)-1]+"; want 1, or more with --raw") {
			t.Errorf("bench e2e %v: stderr %q; want it to name the flag and the value", args, stderr)
		}
		if strings.HasSuffix(args[0], "-dtype") && !strings.Contains(stderr, args[0]+`: "`+args[1]+`" is not one of f32, bf16, f16`) {
			t.Errorf("bench e2e %v: stderr %q; want it to name the flag and the value", args, stderr)
		}
	}
}
