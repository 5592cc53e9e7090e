package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/gpumon"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

func runWorker(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gearbox worker\n\nServes jobs; configured from GEARBOX_* environment variables (see README).")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	subj, err := cfg.subjects()
	if err != nil {
		return err
	}
	backend, err := openBackend(cfg.Device, log)
	if err != nil {
		return err
	}
	defer backend.Close()

	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-worker", true)
	if err != nil {
		return err
	}
	defer closeNATS()
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if gpu := openGPUMon(backend.Name(), log); gpu != nil {
		defer gpu.Close()
		reg.MustRegister(gpumon.NewCollector(gpu))
	}
	met := worker.NewMetrics(reg)
	qmet := quality.NewMetrics(reg)
	if stop, err := serveMetrics(cfg.MetricsAddr, reg, log); err != nil {
		return err
	} else {
		defer stop()
	}

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
		w, err := worker.New(nc, backend, models, wc)
		if err != nil {
			return err
		}
		workers = append(workers, w)
		wg.Go(func() {
			if err := w.Run(hard); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("worker %s: %w", w.Name(), err)
			}
		})
	}
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

// openBackend opens GEARBOX_DEVICE: auto logs why it fell back to the CPU.
func openBackend(spec string, log zerolog.Logger) (kernels.Backend, error) {
	b, fallback, err := kernels.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("GEARBOX_DEVICE=%s: %w", spec, err)
	}
	if fallback != nil {
		log.Info().Str("reason", fallback.Error()).Msg("no usable GPU; using the CPU backend")
	}
	log.Info().Str("device", b.Name()).Msg("backend ready")
	return b, nil
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
	}
	subj, _ := cfg.subjects()
	models.Fetch = func(ctx context.Context, name string) (*model.Model, error) {
		m, err := model.Fetch(ctx, js, subj.ModelBucket(), name)
		if err == nil {
			log.Info().Str("model", m.Name).Str("digest", m.Digest[:12]).Msg("model fetched from the object store")
		}
		return m, err
	}
	return models, nil
}

// serveMetrics serves /metrics on addr ("" or "off": not at all).
func serveMetrics(addr string, reg *prometheus.Registry, log zerolog.Logger) (func(), error) {
	if addr == "" || addr == "off" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("GEARBOX_METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	log.Info().Str("addr", l.Addr().String()).Msg("metrics at /metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
