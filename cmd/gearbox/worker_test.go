package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/model"
)

// TestWorkersOnTheCPU: GEARBOX_WORKERS=2 with GEARBOX_DEVICE=cpu runs two
// workers on one CPU backend, says where each runs, answers every job and
// stops cleanly.
func TestWorkersOnTheCPU(t *testing.T) {
	srv := natstest.Start(t)
	dir := t.TempDir()
	m, err := model.Synth(model.SynthConfig{Name: "m", Dims: []int{4, 8, 2}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := model.Save(m, filepath.Join(dir, "m")); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := defaultConfig()
	cfg.NATSURL, cfg.Models, cfg.Device, cfg.Workers, cfg.Name = srv.ClientURL(), dir, "cpu", 2, "w"
	cfg.MetricsAddr = "127.0.0.1:" + port
	var logs bytes.Buffer // read once runWorker has returned
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runWorker(ctx, &cfg, zerolog.New(zerolog.SyncWriter(&logs))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
		for _, want := range []string{
			`"worker":"w-0","index":0,"device":"cpu"`, `"worker":"w-1","index":1,"device":"cpu"`,
		} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("logs lack %s:\n%s", want, logs.String())
			}
		}
		if n := strings.Count(logs.String(), `"message":"backend ready"`); n != 1 {
			t.Errorf("%d backends opened; want one, shared by both workers:\n%s", n, logs.String())
		}
	}()
	waitReady(t, port)

	const n = 300
	code, stdout, stderr := runCLI(t, []string{"GEARBOX_NATS_URL=" + srv.ClientURL()}, "submit", jobsFile(t, n, nil), "--wait")
	if code != 0 || strings.Count(stdout, "\tm\tfp32\tbatch ") != n {
		t.Errorf("submit --wait of %d jobs: exit status %d, %d results, stderr %q; want 0 and every job answered",
			n, code, strings.Count(stdout, "\n"), stderr)
	}
}
