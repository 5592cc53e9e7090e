package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gearbox-inference/gearbox"
)

// FleetConfig describes supervised `gearbox worker` processes.
type FleetConfig struct {
	// Gearbox is the gearbox binary (required).
	Gearbox string
	// Dir receives each worker's log, w<i>.log (required).
	Dir string
	// Workers is the number of processes (default 1).
	Workers int
	// URL is GEARBOX_NATS_URL: one or more servers, comma-separated.
	URL string
	// Models is GEARBOX_MODELS ("": models come from the object store).
	Models string
	// Streams is how the first worker provisions the streams
	// (GEARBOX_PROVISION=true for w0 only; the others bind to what it
	// made). Give the same configuration to anything else that provisions.
	Streams gearbox.StreamsConfig
	// Env holds more GEARBOX_* settings for every worker; they override
	// the ones StartFleet sets.
	Env []string
}

// Fleet is a set of supervised worker processes: each is started again
// 200 ms after it dies, as an orchestrator would.
type Fleet struct {
	Workers []*Proc
}

// StartFleet starts the workers of cfg. Each runs one worker on the CPU
// backend with its metrics endpoint off, logging JSON lines at info level.
func StartFleet(cfg FleetConfig) (*Fleet, error) {
	if cfg.Gearbox == "" || cfg.Dir == "" {
		return nil, errors.New("chaos: fleet needs the gearbox binary and a directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: fleet: %w", err)
	}
	f := &Fleet{}
	for i := range max(cfg.Workers, 1) {
		name := "w" + strconv.Itoa(i)
		env := append([]string{
			"GEARBOX_NATS_URL=" + cfg.URL,
			"GEARBOX_WORKER_NAME=" + name,
			"GEARBOX_PROVISION=" + strconv.FormatBool(i == 0),
			"GEARBOX_MODELS=" + cfg.Models,
			"GEARBOX_DEVICE=cpu",
			"GEARBOX_METRICS_ADDR=off",
			"GEARBOX_LOG_FORMAT=json",
			"GEARBOX_LOG_LEVEL=info",
		}, streamsEnv(cfg.Streams)...)
		p, err := StartProc(ProcConfig{
			Name: "worker " + name, Path: cfg.Gearbox, Args: []string{"worker"},
			Env: append(env, cfg.Env...), Log: filepath.Join(cfg.Dir, name+".log"), Supervise: true,
		})
		if err != nil {
			f.Stop(time.Second)
			return nil, err
		}
		f.Workers = append(f.Workers, p)
	}
	return f, nil
}

// streamsEnv renders c (with its defaults) as the worker's environment.
func streamsEnv(c gearbox.StreamsConfig) []string {
	c = c.WithDefaults()
	return []string{
		"GEARBOX_REPLICAS=" + strconv.Itoa(c.Replicas),
		"GEARBOX_JOBS_MAX_MSGS=" + strconv.FormatInt(c.JobsMaxMsgs, 10),
		"GEARBOX_JOBS_MAX_BYTES=" + strconv.FormatInt(c.JobsMaxBytes, 10),
		"GEARBOX_RESULTS_MAX_AGE=" + c.ResultsMaxAge.String(),
		"GEARBOX_RESULTS_DEDUPE_WINDOW=" + c.ResultsDuplicates.String(),
		"GEARBOX_ACK_WAIT=" + c.AckWait.String(),
		"GEARBOX_MAX_DELIVER=" + strconv.Itoa(c.MaxDeliver),
		"GEARBOX_MAX_ACK_PENDING=" + strconv.Itoa(c.MaxAckPending),
		"GEARBOX_QUALITY_MAX_PER_MODEL=" + strconv.FormatInt(c.QualityMaxPerModel, 10),
	}
}

// KillRandom sends SIGKILL to a worker chosen with r among those running,
// and returns its name.
func (f *Fleet) KillRandom(r *rand.Rand) (string, error) {
	var running []*Proc
	for _, p := range f.Workers {
		if p.PID() != 0 {
			running = append(running, p)
		}
	}
	if len(running) == 0 {
		return "", fmt.Errorf("%w: no worker is running", ErrNotRunning)
	}
	p := running[r.IntN(len(running))]
	return p.Name(), p.Kill()
}

// Exits lists every worker death so far, of every worker.
func (f *Fleet) Exits() []Exit {
	var out []Exit
	for _, p := range f.Workers {
		out = append(out, p.Exits()...)
	}
	return out
}

// Stop stops every worker gracefully (SIGTERM, then SIGKILL after grace),
// all at once, and reports how many needed SIGKILL.
func (f *Fleet) Stop(grace time.Duration) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	hard := 0
	for _, p := range f.Workers {
		wg.Go(func() {
			if !p.Stop(grace) {
				mu.Lock()
				hard++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return hard
}
