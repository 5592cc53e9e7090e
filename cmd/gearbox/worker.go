package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/internal/buildinfo"
	"github.com/gearbox-inference/gearbox/internal/gpumon"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

func newWorkerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Serve jobs (configured from GEARBOX_* variables)",
		Long: `Serves jobs until SIGINT or SIGTERM, then finishes the jobs in flight
(GEARBOX_SHUTDOWN_TIMEOUT). Configured from the GEARBOX_* environment
variables (see the README). With GEARBOX_NATS_URL empty it starts an embedded
NATS server on GEARBOX_EMBEDDED_LISTEN. Metrics, /healthz and /readyz are on
GEARBOX_METRICS_ADDR.`,
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runWorker(cmd.Context(), &a.cfg, a.log) },
	}
}

func runWorker(ctx context.Context, cfg *config, log zerolog.Logger) error {
	subj, err := cfg.subjects()
	if err != nil {
		return err
	}
	place, err := openBackends(cfg.Device, max(cfg.Workers, 1), log)
	if err != nil {
		return err
	}
	defer place.Close()

	// Metrics and probes come up first, so a worker waiting for NATS says
	// so on /readyz.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Read().Gauge())
	// One collector for every GPU: its labels (NVML index, UUID) tell them
	// apart, and a collector per GPU would register the same metrics twice.
	if gpus := openGPUMons(place.Backends, log); len(gpus) > 0 {
		defer gpus.Close()
		reg.MustRegister(gpumon.NewCollector(gpus...))
	}
	met := worker.NewMetrics(reg)
	qmet := quality.NewMetrics(reg)
	probe := &probes{}
	if stop, err := serveMetrics(cfg.MetricsAddr, reg, probe, log); err != nil {
		return err
	} else {
		defer stop()
	}

	// A connection per worker: workers in one process share nothing on the
	// way in or out (docs/architecture.md, "One connection per worker").
	conns, closeNATS, err := connectN(ctx, cfg, log, "gearbox-worker", true, max(cfg.Workers, 1))
	if err != nil {
		return err
	}
	defer closeNATS()
	nc := conns[0]
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	models, err := loadModels(ctx, cfg, js, log)
	if err != nil {
		return err
	}
	followCtx, stopFollow := context.WithCancel(context.Background())
	defer stopFollow()
	go func() { _ = models.Follow(followCtx, js, subj.ModelBucket(), log) }()

	// The first signal (ctx) asks for a graceful stop; a second one, or the
	// shutdown timeout, stops hard.
	hard, hardStop := context.WithCancel(context.Background())
	defer hardStop()
	var workers []*worker.Worker
	errs := make(chan error, cfg.Workers)
	var wg sync.WaitGroup
	for i := range cfg.Workers {
		wc := cfg.worker(subj)
		if cfg.Workers > 1 && wc.Name != "" {
			wc.Name = fmt.Sprintf("%s-%d", wc.Name, i)
		}
		wc.Logger, wc.Metrics, wc.Quality.Metrics = &log, met, qmet
		if i > 0 {
			wc.Quality.Control = false // one controller per process is enough
		}
		b := place.Workers[i]
		w, err := worker.New(conns[i], b, models, wc)
		if err != nil {
			return err
		}
		log.Info().Str("worker", w.Name()).Int("index", i).Str("device", b.Name()).Str("uuid", deviceUUID(b)).Msg("worker placed")
		workers = append(workers, w)
		wg.Go(func() {
			err := w.Run(hard)
			probe.stopped(w, err)
			if err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("worker %s: %w", w.Name(), err)
			}
		})
	}
	probe.serving(workers)
	select {
	case err := <-errs:
		hardStop()
		wg.Wait()
		return err
	case <-ctx.Done():
	}
	log.Info().Dur("timeout", cfg.ShutdownTimeout).Msg("stopping: finishing in-flight jobs (signal again to stop at once)")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			log.Warn().Msg("second signal: stopping now")
			cancel()
		case <-sctx.Done():
		}
	}()
	var incomplete atomic.Int32
	var sg sync.WaitGroup
	for _, w := range workers {
		sg.Go(func() {
			if err := w.Shutdown(sctx); err != nil {
				log.Warn().Err(err).Str("worker", w.Name()).Msg("graceful stop incomplete; unacked jobs will be redelivered")
				incomplete.Add(1)
			}
		})
	}
	sg.Wait()
	if incomplete.Load() > 0 {
		hardStop()
		wg.Wait()
		return fmt.Errorf("%d worker(s) stopped before finishing their jobs; those jobs will be redelivered", incomplete.Load())
	}
	wg.Wait()
	return nil
}

// openBackend opens GEARBOX_DEVICE for one worker (openBackends).
func openBackend(spec string, log zerolog.Logger) (kernels.Backend, error) {
	p, err := openBackends(spec, 1, log)
	if err != nil {
		return nil, err
	}
	return p.Workers[0], nil
}

// openBackends opens GEARBOX_DEVICE for workers workers
// (kernels.OpenWorkers: "cuda" and "auto" spread them over the visible
// GPUs, one backend per GPU): auto logs why it fell back to the CPU.
func openBackends(spec string, workers int, log zerolog.Logger) (*kernels.Placement, error) {
	p, err := kernels.OpenWorkers(spec, workers)
	if err != nil {
		return nil, fmt.Errorf("GEARBOX_DEVICE=%s: %w", spec, err)
	}
	if p.Fallback != nil {
		log.Info().Str("reason", p.Fallback.Error()).Msg("no usable GPU; using the CPU backend")
	}
	for _, b := range p.Backends {
		log.Info().Str("device", b.Name()).Str("uuid", deviceUUID(b)).Msg("backend ready")
	}
	return p, nil
}

// loadModels loads GEARBOX_MODELS and arranges for models missing from it
// to be fetched from the object store on first use.
func loadModels(ctx context.Context, cfg *config, js jetstream.JetStream, log zerolog.Logger) (*worker.Models, error) {
	models := worker.NewModels()
	if cfg.Models != "" {
		ms, err := model.LoadAll(cfg.Models)
		if err != nil {
			return nil, fmt.Errorf("GEARBOX_MODELS: %w", err)
		}
		for _, m := range ms {
			models.Put(m)
			log.Info().Str("model", m.Name).Str("version", m.Version).Str("digest", m.Digest[:12]).Msg("model loaded")
		}
		lms, err := lm.LoadAll(cfg.Models)
		if err != nil {
			return nil, fmt.Errorf("GEARBOX_MODELS: %w", err)
		}
		for _, m := range lms {
			if err := models.PutLM(m); err != nil {
				return nil, fmt.Errorf("GEARBOX_MODELS: %w", err)
			}
			log.Info().Str("model", m.Name).Str("version", m.Version).Str("arch", string(m.Config.Arch)).
				Int("layers", m.Config.Layers).Str("digest", m.Digest[:12]).Msg("language model loaded")
		}
	}
	subj, _ := cfg.subjects()
	models.Fetch = func(ctx context.Context, name string) (*model.Model, error) {
		m, err := model.Fetch(ctx, js, subj.ModelBucket(), name)
		if err == nil {
			log.Info().Str("model", m.Name).Str("digest", m.Digest[:12]).Msg("model fetched from the object store")
		}
		return m, err
	}
	models.FetchLM = func(ctx context.Context, name string) (*lm.Model, error) {
		m, err := lm.Fetch(ctx, js, subj.ModelBucket(), name)
		if err == nil {
			log.Info().Str("model", m.Name).Str("digest", m.Digest[:12]).Msg("language model fetched from the object store")
		}
		return m, err
	}
	return models, nil
}

// probes answers /healthz and /readyz for the process's workers.
type probes struct {
	mu      sync.Mutex
	workers []*worker.Worker
	stops   []string // workers whose Run returned, and why
}

func (p *probes) serving(ws []*worker.Worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.workers = ws
}

func (p *probes) stopped(w *worker.Worker, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stops = append(p.stops, fmt.Sprintf("worker %s stopped: %v", w.Name(), err))
}

// healthz: the process's workers are running (a worker that stopped on its
// own is a reason to restart the process).
func (p *probes) healthz(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	why := slices.Clone(p.stops)
	for _, wk := range p.workers {
		if err := wk.Healthy(); err != nil {
			why = append(why, err.Error())
		}
	}
	p.mu.Unlock()
	if len(why) > 0 {
		http.Error(w, strings.Join(why, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// readyz: every worker is connected to NATS and bound to the consumer (the
// backend is open and the models loaded before workers start).
func (p *probes) readyz(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	ws := p.workers
	p.mu.Unlock()
	if len(ws) == 0 {
		http.Error(w, "starting: no worker running yet", http.StatusServiceUnavailable)
		return
	}
	var why []string
	for _, wk := range ws {
		if err := wk.Ready(); err != nil {
			why = append(why, err.Error())
		}
	}
	if len(why) > 0 {
		http.Error(w, strings.Join(why, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// serveMetrics serves /metrics, /healthz and /readyz on addr ("" or "off":
// not at all).
func serveMetrics(addr string, reg *prometheus.Registry, probe *probes, log zerolog.Logger) (func(), error) {
	if addr == "" || addr == "off" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("GEARBOX_METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", probe.healthz)
	mux.HandleFunc("/readyz", probe.readyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	log.Info().Str("addr", l.Addr().String()).Msg("metrics at /metrics; probes at /healthz, /readyz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
