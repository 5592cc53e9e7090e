// Package examples holds client examples in other languages and in Go;
// its test runs each against a real in-process JetStream server and a
// worker, so they cannot drift from the wire contract.
package examples

import (
	"context"
	"os"
	"os/exec"
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

// serve starts a server and a worker serving model demo (16 → 4) and
// returns the server's URL.
func serve(t *testing.T) string {
	t.Helper()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	if err := gearbox.Provision(context.Background(), mustJS(t, nc), gearbox.DefaultSubjects, gearbox.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Synth(model.SynthConfig{Name: "demo", Dims: []int{16, 32, 4}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(natstest.Connect(t, srv), b, worker.NewModels(m), worker.Config{Name: "examples"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.ClientURL()
}

// run runs a command with the example's environment and returns its
// output, failing the test on a non-zero exit.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestGoExamples(t *testing.T) {
	url := serve(t)
	env := []string{"NATS_URL=" + url, "MODEL=demo", "FEATURES=16", "JOBS=5", "COUNT=5"}
	out := run(t, ".", env, "go", "run", "./go/producer")
	if n := strings.Count(out, "fp32 [1 4]"); n != 5 {
		t.Errorf("producer printed %d results; want 5:\n%s", n, out)
	}
	out = run(t, ".", env, "go", "run", "./go/consumer")
	if n := strings.Count(out, "[1 4] by examples"); n != 5 {
		t.Errorf("consumer printed %d results; want 5:\n%s", n, out)
	}
}

// TestNodeExamples runs the Node.js producer and consumer, written from
// docs/wire.md alone. It needs node and npm (and the npm registry, once,
// for the two packages of package-lock.json); without them it skips.
func TestNodeExamples(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed")
	}
	dir := filepath.Join("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "nats")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("npm ci failed (no registry?): %v\n%s", err, out)
		}
	}
	url := serve(t)
	env := []string{"NATS_URL=" + url, "MODEL=demo", "FEATURES=16", "JOBS=6", "COUNT=6"}
	out := run(t, dir, env, "node", "producer.mjs")
	if !strings.Contains(out, "reply node-5: precision fp32, output shape [2,4]") {
		t.Errorf("producer output:\n%s", out)
	}
	out = run(t, dir, env, "node", "consumer.mjs")
	for i := range 6 {
		if !strings.Contains(out, "node-"+string(rune('0'+i))+": fp32 [") {
			t.Errorf("consumer did not print node-%d:\n%s", i, out)
		}
	}
}
