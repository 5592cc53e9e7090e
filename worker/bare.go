package worker

import (
	"context"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// What a worker hands its language-model engines, for a caller that runs
// the same sequences on the same engines without the queue: the measure
// of what the queue costs ("gearbox bench lm" with the bare phase).

// NewLMEngine returns the engine a worker with cfg starts for m at p on
// backend: its KV cache sized as the worker sizes it (cfg.KVFraction of
// the device memory free once m's weights for p are loaded, else
// cfg.KVBytes; the defaults of Config where cfg leaves them zero), its
// token budget, sequence limit and prefix cache from cfg. The caller runs
// it (Engine.Run) and closes it.
func NewLMEngine(ctx context.Context, backend kernels.LM, m *lm.Model, p precision.Format, cfg Config) (*engine.Engine, error) {
	ec, blocks, _, err := lmEngineConfig(ctx, backend, m, p, cfg.withDefaults())
	if err != nil {
		return nil, err
	}
	return engine.New(backend, m, p, blocks, ec)
}

// LMSeq returns the engine sequence a worker with cfg runs for job (a
// job for a language model of s, fetched with s.FetchLM if need be): its
// prompt (prompt_tokens, or prompt through the model's tokenizer),
// max_tokens, sampling and end-of-sequence tokens, as the worker checks
// and fills them in; and the model. Stop strings and streaming, which
// need the worker, are left out. An error wraps gearbox's error for a job
// the worker would refuse.
func (s *Models) LMSeq(ctx context.Context, job *gearbox.Job, cfg Config) (*engine.Seq, *lm.Model, error) {
	l, ok, err := s.fetchLanguageModel(ctx, job.Model, *cfg.withDefaults().Logger)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, gearbox.Errorf(gearbox.CodeUnknownModel, "job %q: no language model %q", job.ID, job.Model)
	}
	q, _, e := lmSeq(job, l, cfg.withDefaults().LMMaxTokens)
	if e != nil {
		return nil, nil, e
	}
	return q, l.m, nil
}

// lmEngineConfig is the engine configuration and KV cache (blocks, and
// its budget in bytes) of an engine for m at p of a worker with cfg
// (defaults applied).
func lmEngineConfig(ctx context.Context, b kernels.LM, m *lm.Model, p precision.Format, cfg Config) (engine.Config, int, int64, error) {
	budget, err := kvBudget(ctx, b, m, p, cfg)
	if err != nil {
		return engine.Config{}, 0, 0, err
	}
	blocks, err := kvBlocks(m, p, budget)
	if err != nil {
		return engine.Config{}, 0, 0, err
	}
	ec := engine.Config{TokenBudget: cfg.LMTokenBudget, MaxSeqs: cfg.LMMaxSeqs, NoPrefixCache: cfg.LMNoPrefixCache}
	return ec, blocks, budget, nil
}

// LMStats returns what each of the worker's language-model engines has
// run so far (engine.Engine.Stats), in no particular order; none once the
// worker has stopped.
func (w *Worker) LMStats() []engine.StepStats {
	var out []engine.StepStats
	for _, st := range w.engines.stats() {
		out = append(out, st)
	}
	return out
}
