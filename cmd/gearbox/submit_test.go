package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/worker"
)

// startWorker starts an in-process NATS server and a real worker serving
// model "m" (4 → 8 → 2) on the CPU, and returns the server's URL.
func startWorker(t *testing.T) string {
	t.Helper()
	srv := natstest.Start(t)
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Synth(model.SynthConfig{Name: "m", Dims: []int{4, 8, 2}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(natstest.Connect(t, srv), b, worker.NewModels(m), worker.Config{Name: "w", Provision: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); w.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready after 30 s: %v", w.Ready())
		}
	}
	return srv.ClientURL()
}

// jobsFile writes n JSON jobs for model "m", one a line; the ids in bad
// get an input of the wrong width.
func jobsFile(t *testing.T, n int, bad map[int]bool) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		width := 4
		if bad[i] {
			width = 3
		}
		vals := make([]float32, width)
		for k := range vals {
			vals[k] = float32(i%7) - float32(k)
		}
		j, err := json.Marshal(&gearbox.Job{ID: fmt.Sprintf("j%d", i), Model: "m", Input: gearbox.NewTensor(1, width, vals)})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "jobs.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSubmitWait: --wait prints one line per job, as the results come, and
// the exit status says whether any carried an error; a second run of the
// same jobs (duplicates: no results come) fails instead of waiting forever.
func TestSubmitWait(t *testing.T) {
	env := []string{"GEARBOX_NATS_URL=" + startWorker(t)}
	const n = 1000 // four submit windows
	good := jobsFile(t, n, nil)
	code, stdout, stderr := runCLI(t, env, "submit", good, "--wait", "--json")
	if code != 0 {
		t.Fatalf("submit --wait of %d good jobs: exit status %d: %s", n, code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		id, rest, _ := strings.Cut(l, "\t")
		if seen[id] || !strings.HasPrefix(rest, "m\tfp32\tbatch ") {
			t.Fatalf("result line %q: want one line per job, id, model m, fp32, its batch", l)
		}
		seen[id] = true
	}
	if len(seen) != n || !strings.Contains(stderr, fmt.Sprintf("published %d jobs (0 duplicates", n)) {
		t.Errorf("%d results, stderr %q; want %d", len(seen), stderr, n)
	}

	// The same jobs again: the stream drops them, so no result comes.
	code, stdout, stderr = runCLI(t, env, "submit", good, "--wait")
	if code != 1 || stdout != "" || !strings.Contains(stderr, fmt.Sprintf("%d jobs were duplicates", n)) {
		t.Errorf("resubmitted: exit status %d, stdout %q, stderr %q; want 1 and the duplicates named", code, stdout, stderr)
	}

	// Two jobs of the wrong width among good ones (new ids: another file's
	// j0.. would be duplicates, so prefix them).
	path := jobsFile(t, 50, map[int]bool{3: true, 40: true})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), `"id":"j`, `"id":"b`)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, env, "submit", "--wait", path)
	if code != 1 || !strings.Contains(stderr, "2 of 50 results carry errors") {
		t.Errorf("bad jobs: exit status %d, stderr %q; want 1 and 2 of 50 results carry errors", code, stderr)
	}
	for _, id := range []string{"b3", "b40"} {
		if !strings.Contains(stdout, id+"\tm\tERROR shape_mismatch") {
			t.Errorf("no shape_mismatch line for %s in\n%s", id, stdout)
		}
	}
	if got := strings.Count(stdout, "\n"); got != 50 {
		t.Errorf("%d result lines; want 50", got)
	}
}

// TestSubmitWithoutWait publishes without waiting for results.
func TestSubmitWithoutWait(t *testing.T) {
	env := []string{"GEARBOX_NATS_URL=" + startWorker(t)}
	code, stdout, stderr := runCLI(t, env, "submit", "--random", "600", "--model", "m", "--features", "4")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "published 600 jobs (0 duplicates") {
		t.Errorf("exit status %d, stdout %q, stderr %q; want 0 and 600 published", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, env, "submit", "--random", "3", "--features", "4")
	if code != 2 || !strings.Contains(stderr, "--random needs --model") {
		t.Errorf("--random without --model: exit status %d, stderr %q; want 2", code, stderr)
	}
}
