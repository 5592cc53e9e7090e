package lmbench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/embedded"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/worker"
)

// bench is what the phases of a run share.
type bench struct {
	cfg    Config
	srv    *server.Server
	client *gearbox.Client
	subj   gearbox.Subjects
	kv     jetstream.KeyValue // the policy bucket
	models []ModelInfo
	set    *worker.Models // shared by every phase's workers: each model is fetched once
	jobs   []job

	// The followers' output, read by one phase at a time.
	results   chan *gearbox.Result
	reports   chan *gearbox.QualityReport
	policies  chan *gearbox.PrecisionPolicy
	followErr chan error
}

// Run runs the phases of cfg.Phases (the auto phase, the pinned phase,
// the bare engine loop) on the same jobs, and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir := cfg.StoreDir
	if dir == "" {
		d, err := os.MkdirTemp("", "gearbox-bench-lm-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	srv, err := embedded.Start(embedded.Config{Dir: dir})
	if err != nil {
		return nil, err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the followers, before the server
	b := &bench{cfg: cfg, srv: srv, subj: cfg.Worker.Subjects,
		results: make(chan *gearbox.Result, 1024), reports: make(chan *gearbox.QualityReport, 1024),
		policies: make(chan *gearbox.PrecisionPolicy, 64), followErr: make(chan error, 3)}
	if b.subj.Prefix == "" {
		b.subj = gearbox.DefaultSubjects
	}
	nc, err := b.connect("bench-lm")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if b.client, err = gearbox.NewClient(nc, gearbox.WithPrefix(b.subj.Prefix)); err != nil {
		return nil, err
	}
	if err := b.client.Provision(ctx, cfg.Worker.Streams); err != nil {
		return nil, err
	}
	js := b.client.JetStream()
	if b.kv, err = gearbox.PolicyStore(ctx, js, b.subj, 1, true); err != nil {
		return nil, err
	}
	if err := b.push(ctx); err != nil {
		return nil, err
	}
	b.set = worker.NewModels()
	b.set.FetchLM = func(ctx context.Context, name string) (*lm.Model, error) {
		return lm.Fetch(ctx, js, b.subj.ModelBucket(), name)
	}
	vocabs := make([]int, len(b.models))
	for i, m := range b.models {
		vocabs[i] = m.Vocab
	}
	b.jobs = jobList(cfg.Seed, cfg.Jobs, vocabs, cfg.PromptMin, cfg.PromptMax, cfg.OutputMin, cfg.OutputMax)
	if err := b.follow(ctx); err != nil {
		return nil, err
	}

	rep := newReport(cfg, b.models)
	for _, name := range phaseOrder {
		if !cfg.runs(name) {
			continue
		}
		var ph *Phase
		var err error
		switch name {
		case PhaseAuto:
			ph, err = b.phase(ctx, b.autoSpec())
		case PhasePinned:
			if cfg.runs(PhaseBare) && !cfg.NoWarmPass {
				if _, err := b.bare(ctx, true); err != nil {
					return nil, fmt.Errorf("warm pass: %w", err)
				}
			}
			ph, err = b.phase(ctx, b.pinnedSpec())
		case PhaseBare:
			ph, err = b.bare(ctx, false)
		}
		if err != nil {
			return nil, fmt.Errorf("%s phase: %w", name, err)
		}
		rep.Phases = append(rep.Phases, *ph)
	}
	rep.finish()
	return rep, nil
}

// push pushes every model's checkpoint to the object store (lm.Push, as
// `gearbox model push` does) and checks the workload fits each one.
func (b *bench) push(ctx context.Context) error {
	seen := map[string]string{}
	for _, spec := range b.cfg.Models {
		start := time.Now()
		m, err := lm.Push(ctx, b.client.JetStream(), b.subj.ModelBucket(), spec.Dir)
		if err != nil {
			return err
		}
		if dir, ok := seen[m.Name]; ok {
			return fmt.Errorf("%w: %s and %s are both model %s: give distinct models", ErrInvalidConfig, dir, spec.Dir, m.Name)
		}
		seen[m.Name] = spec.Dir
		c := &m.Config
		if need := b.cfg.PromptMax + b.cfg.OutputMax; need > c.MaxPositions {
			return fmt.Errorf("%w: model %s's context is %d tokens: prompts of up to %d and outputs of up to %d do not fit",
				ErrInvalidConfig, m.Name, c.MaxPositions, b.cfg.PromptMax, b.cfg.OutputMax)
		}
		info := ModelInfo{Name: m.Name, Label: spec.Label, Dir: spec.Dir, Digest: m.Digest, Arch: string(c.Arch),
			Layers: c.Layers, Hidden: c.Hidden, Vocab: c.Vocab, Context: c.MaxPositions, Params: m.Params(),
			WeightBytes: m.WeightBytes(), MaxKL: spec.MaxKL, Ladder: m.Precision.Ladder, Reference: m.Reference(),
			PushSeconds: time.Since(start).Seconds()}
		b.models = append(b.models, info)
		b.progress("pushed %s (%s, %d layers, %.2f GB of weights) in %.1fs", m.Name, c.Arch, c.Layers, float64(info.WeightBytes)/1e9, info.PushSeconds)
	}
	return nil
}

// follow starts following the results, the quality reports and the
// policy bucket, from now on, into b's channels.
func (b *bench) follow(ctx context.Context) error {
	watch, err := b.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	go func() {
		defer func() { _ = watch.Stop() }()
		for {
			select {
			case e := <-watch.Updates():
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				if p, err := gearbox.DecodePolicy(e.Value()); err == nil {
					send(ctx, b.policies, p)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		for r, err := range b.client.Results(ctx, "*", true) {
			if err != nil {
				send(ctx, b.followErr, fmt.Errorf("results: %w", err))
				return
			}
			send(ctx, b.results, r)
		}
	}()
	go func() {
		for r, err := range b.client.QualityReports(ctx, "*", true) {
			if err != nil {
				send(ctx, b.followErr, fmt.Errorf("quality reports: %w", err))
				return
			}
			send(ctx, b.reports, r)
		}
	}()
	return nil
}

// send sends v on ch unless ctx ends first.
func send[T any](ctx context.Context, ch chan<- T, v T) {
	select {
	case ch <- v:
	case <-ctx.Done():
	}
}

// connect opens an in-process connection to the server.
func (b *bench) connect(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(b.srv), nats.Name(name))
}

func (b *bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, format+"\n", args...)
	}
}

// energyMeter returns a function giving the joules used since it was
// called; nil when there is no counter or it failed.
func (b *bench) energyMeter() func() *float64 {
	if b.cfg.Energy == nil {
		return func() *float64 { return nil }
	}
	e0, err := b.cfg.Energy()
	return func() *float64 {
		e1, err1 := b.cfg.Energy()
		if err != nil || err1 != nil {
			return nil
		}
		j := e1 - e0
		return &j
	}
}
