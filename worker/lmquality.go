package worker

import (
	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/quality"
)

// The quality loop of language models: a sampled fraction of finished
// generations is handed to a quality.LMChecker, which re-runs each
// teacher-forced on its own goroutine (never delaying the job's answer)
// and publishes a report on gearbox.quality.<model> like the tensor
// models' checks; the same controller moves the model's policy on the
// model's metric (KL by default).

// newLMChecker returns the worker's checker of generations, or nil when
// the quality loop is off or the backend runs no language models.
func (w *Worker) newLMChecker() (*quality.LMChecker, error) {
	if _, ok := w.backend.(kernels.LM); !ok || !w.cfg.Quality.Enabled() {
		return nil, nil
	}
	return quality.NewLMChecker(w.cfg.Quality, w.backend, w.cfg.Name, w.publishReport, w.log)
}

// offerLMCheck offers t's finished generation o to the checker. It runs on
// the engine's goroutine, and returns at once.
func (w *Worker) offerLMCheck(t *task, o *engine.Outcome) {
	if w.lmChecker == nil || len(o.Tokens) == 0 {
		return
	}
	gen := make([]int32, len(o.Tokens))
	for i, tk := range o.Tokens {
		gen[i] = tk.ID
	}
	w.lmChecker.Offer(w.nowFn(), t.lm.served.m, t.prec, t.job.ID, t.lm.seq.Prompt, gen)
}
