package worker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// env is one test's world: a real in-process JetStream server, the
// provisioned streams, a model and the CPU backend.
type env struct {
	t       testing.TB
	srv     *server.Server
	client  *gearbox.Client
	js      jetstream.JetStream
	models  *worker.Models
	m       *model.Model
	backend kernels.Backend
	streams gearbox.StreamsConfig
}

func setup(t testing.TB, streams gearbox.StreamsConfig, dims ...int) *env {
	t.Helper()
	srv := natstest.Start(t)
	nc := connect(t, srv)
	client, err := gearbox.NewClient(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Provision(context.Background(), streams); err != nil {
		t.Fatal(err)
	}
	if len(dims) == 0 {
		dims = []int{16, 32, 8}
	}
	m, err := model.Synth(model.SynthConfig{Name: "mlp", Dims: dims, Act: model.GELU, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, client: client, js: client.JetStream(), models: worker.NewModels(m), m: m, backend: b, streams: streams}
}

// connect opens a connection that never gives up reconnecting.
func connect(t testing.TB, srv *server.Server) *nats.Conn {
	t.Helper()
	return natstest.Connect(t, srv, nats.MaxReconnects(-1))
}

// running is a worker started by env.start.
type running struct {
	w      *worker.Worker
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // Run's error, once done
}

// kill stops the worker hard: nothing more is published or acked.
func (r *running) kill() {
	r.cancel()
	<-r.done
	r.nc.Close()
}

// stop stops the worker gracefully and returns Run's error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.w.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	<-r.done
	return r.err
}

// start runs a worker on its own connection, as a separate process would.
func (e *env) start(name string, cfg worker.Config, backend kernels.Backend) *running {
	e.t.Helper()
	return e.startOn(connect(e.t, e.srv), name, cfg, backend)
}

// startOn runs a worker on nc.
func (e *env) startOn(nc *nats.Conn, name string, cfg worker.Config, backend kernels.Backend) *running {
	e.t.Helper()
	if backend == nil {
		backend = e.backend
	}
	cfg.Name = name
	if cfg.Logger == nil {
		l := zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel)
		cfg.Logger = &l
	}
	w, err := worker.New(nc, backend, e.models, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, nc: nc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = w.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// job returns a valid job of rows random rows, with its input.
func (e *env) job(id string, rows int, seed uint64) *gearbox.Job {
	vals := randVals(rows*e.m.InputFeatures, seed)
	return &gearbox.Job{ID: id, Model: e.m.Name, Input: gearbox.NewTensor(rows, e.m.InputFeatures, vals)}
}

func randVals(n int, seed uint64) []float32 {
	// A small xorshift keeps inputs cheap and reproducible.
	x := seed*0x9e3779b97f4a7c15 + 1
	vals := make([]float32, n)
	for i := range vals {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		vals[i] = float32(int64(x>>11)%2000-1000) / 500
	}
	return vals
}

// results reads every result stored in the result stream, waiting until
// want have arrived (or failing after a generous timeout).
func (e *env) results(want int) []*gearbox.Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var out []*gearbox.Result
	for r, err := range e.client.Results(ctx, "*", true) {
		if err != nil {
			e.t.Fatalf("results: %v", err)
		}
		out = append(out, r)
		if len(out) == want {
			break
		}
	}
	if len(out) < want {
		e.t.Fatalf("got %d results; want %d", len(out), want)
	}
	return out
}

// streamMsgs is the number of messages stored in a stream.
func (e *env) streamMsgs(name string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// checkFor polls fn until it returns nil or total passes.
func checkFor(t testing.TB, total, step time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(step)
	}
	t.Fatalf("condition not met after %v: %v", total, err)
}

// checkOutput fails the test unless r is j's output within tol of the
// float64 reference.
func (e *env) checkOutput(j *gearbox.Job, r *gearbox.Result, tol float64) {
	e.t.Helper()
	if err := e.outputErr(j, r, tol); err != nil {
		e.t.Fatal(err)
	}
}

// outputErr compares a result's output with the float64 reference forward
// of e.m on the job's input.
func (e *env) outputErr(j *gearbox.Job, r *gearbox.Result, tol float64) error {
	if r.Error != nil {
		return fmt.Errorf("job %s: error %v", j.ID, r.Error)
	}
	in, _ := j.Input.Values()
	in64 := make([]float64, len(in))
	for i, v := range in {
		in64[i] = float64(v)
	}
	want, err := cpu.Reference(e.m, in64, j.Input.Rows())
	if err != nil {
		return err
	}
	got, err := r.Output.Values()
	if err != nil {
		return fmt.Errorf("job %s: output: %v", j.ID, err)
	}
	if len(got) != len(want) || r.Output.Rows() != j.Input.Rows() {
		return fmt.Errorf("job %s: output shape %v; want [%d, %d]", j.ID, r.Output.Shape, j.Input.Rows(), e.m.OutputFeatures)
	}
	if d := relL2(got, want); d > tol {
		return fmt.Errorf("job %s: relative error %.3g against the float64 reference; want ≤ %g", j.ID, d, tol)
	}
	return nil
}

// relL2 is the quality loop's relative L2 error of got against want.
func relL2(got []float32, want []float64) float64 {
	return quality.Compare(got, want, 1, len(want), false).RelL2
}

// gated wraps a backend so a test decides when Forward may run: it signals
// entered, then waits for release (or its context).
type gated struct {
	kernels.Backend
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGated(b kernels.Backend) *gated {
	return &gated{Backend: b, entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gated) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Backend.Forward(ctx, m, p, in, rows)
}

func (g *gated) open() { g.once.Do(func() { close(g.release) }) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
