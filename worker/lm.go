package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
	"github.com/gearbox-inference/gearbox/precision"
)

// Language-model jobs take the same path as tensor jobs up to admission
// and from their answer on (end, the ack loop, settle); in between, instead
// of the batcher and the executor, an engine per (model version, precision)
// runs them in continuous batches (package engine), and calls back as each
// token is sampled (stop strings, streaming) and as each sequence ends.

// lmServed is a language model the worker serves, with its tokenizer.
type lmServed struct {
	m   *lm.Model
	tok *tokenizer.Tokenizer // nil when the checkpoint has none: prompt_tokens only
}

// lmJob is a language-model task's own state.
type lmJob struct {
	served    *lmServed
	seq       *engine.Seq
	task      gearbox.Task
	stops     []string // stop strings
	maxStop   int      // the longest stop string, in bytes
	dec       *tokenizer.Decoder
	text      strings.Builder // the generated text so far
	streamed  int             // bytes of text already streamed
	chunks    int             // stream chunks sent
	stopAt    int             // where a stop string begins in text; -1 if none
	chunkToks []int32         // tokens since the last chunk
}

// checkLM checks a job for the language model s and fills in t, or says why
// it cannot run.
func (w *Worker) checkLM(t *task, s *lmServed) *gearbox.Error {
	job := t.job
	if _, ok := w.backend.(kernels.LM); !ok {
		return gearbox.Errorf(gearbox.CodeBadRequest, "job %q: worker %s's backend %s runs no language models", job.ID, w.cfg.Name, w.backend.Name())
	}
	q, task, e := lmSeq(job, s, w.cfg.LMMaxTokens)
	if e != nil {
		return e
	}
	t.lm = &lmJob{served: s, seq: q, task: task, stops: job.Stop, stopAt: -1}
	for _, st := range job.Stop {
		t.lm.maxStop = max(t.lm.maxStop, len(st))
	}
	if job.Stream && t.replyTo == "" {
		return gearbox.Errorf(gearbox.CodeBadRequest, "job %q: stream needs a reply_to to stream to", job.ID)
	}
	if (len(job.Stop) > 0 || job.Stream) && s.tok == nil {
		return gearbox.Errorf(gearbox.CodeBadRequest, "job %q: stop and stream need text, and model %s has no tokenizer.json", job.ID, s.m.Name)
	}
	if d := job.DeadlineTime(); !d.IsZero() && !w.nowFn().Before(d) {
		return w.expired(t)
	}
	t.rows = 1
	t.bytes = len(t.msg.Data()) + 4*len(q.Prompt)
	t.prec, e = w.selectLMPrecision(t)
	return e
}

// lmSeq is the engine sequence of job for the language model s, with
// maxTokens for a generation that gives no max_tokens, and its task; or
// why it cannot run.
func lmSeq(job *gearbox.Job, s *lmServed, maxTokens int) (*engine.Seq, gearbox.Task, *gearbox.Error) {
	if !job.IsLM() {
		return nil, "", gearbox.Errorf(gearbox.CodeBadRequest, "job %q gives input, but %s is a language model: give prompt or prompt_tokens", job.ID, s.m.Name)
	}
	c := &s.m.Config
	prompt := job.PromptTokens
	if job.Prompt != "" {
		if s.tok == nil {
			return nil, "", gearbox.Errorf(gearbox.CodeBadRequest, "job %q: model %s has no tokenizer.json: give prompt_tokens", job.ID, s.m.Name)
		}
		ids := s.tok.Encode(job.Prompt, true)
		prompt = make([]int32, len(ids))
		for i, id := range ids {
			prompt[i] = int32(id)
		}
	}
	for i, id := range prompt {
		if int(id) >= c.Vocab {
			return nil, "", gearbox.Errorf(gearbox.CodeBadRequest, "job %q: prompt_tokens[%d] = %d is outside the vocabulary of %s (%d tokens)", job.ID, i, id, s.m.Name, c.Vocab)
		}
	}
	if len(prompt) == 0 {
		return nil, "", gearbox.Errorf(gearbox.CodeBadRequest, "job %q: the prompt is empty", job.ID)
	}
	if len(prompt) > c.MaxPositions {
		return nil, "", gearbox.Errorf(gearbox.CodeTooLarge, "job %q: the prompt is %d tokens; model %s's context is %d", job.ID, len(prompt), s.m.Name, c.MaxPositions)
	}
	task := job.Task
	if task == "" {
		task = gearbox.Generate
	}
	q := &engine.Seq{Prompt: prompt, Priority: job.Priority, Deadline: job.DeadlineTime(), EOS: s.m.Generation.EOS}
	switch task {
	case gearbox.Embed:
		q.Task = engine.Embed
	case gearbox.Score:
		q.Task = engine.Score
	default:
		q.Task = engine.Generate
		room := c.MaxPositions - len(prompt)
		q.MaxTokens = min(maxTokens, room)
		if job.MaxTokens != nil {
			if *job.MaxTokens > room {
				return nil, "", gearbox.Errorf(gearbox.CodeBadRequest, "job %q: max_tokens %d is beyond the context: a prompt of %d tokens leaves %d of model %s's %d", job.ID, *job.MaxTokens, len(prompt), room, s.m.Name, c.MaxPositions)
			}
			q.MaxTokens = *job.MaxTokens
		}
		if q.MaxTokens < 1 {
			return nil, "", gearbox.Errorf(gearbox.CodeTooLarge, "job %q: the prompt fills model %s's context of %d: no room to generate", job.ID, s.m.Name, c.MaxPositions)
		}
		q.Sampling = sampling(job, s.m.Generation)
		if s.tok != nil {
			for _, id := range s.tok.StopIDs() {
				q.EOS = append(q.EOS, int32(id))
			}
		}
	}
	return q, task, nil
}

// sampling is a job's sampling: its own parameters where it gives them,
// else the model's generation_config.json (greedy unless it samples). The
// seed, when the job gives none, comes from its id, so a redelivered job
// samples the same tokens.
func sampling(job *gearbox.Job, g lm.Generation) kernels.Sampling {
	s := kernels.Sampling{TopLogprobs: job.Logprobs}
	if g.DoSample {
		s.Temperature, s.TopK, s.TopP = float32(g.Temperature), g.TopK, float32(g.TopP)
	}
	if job.Temperature != nil {
		s.Temperature = float32(*job.Temperature)
	}
	if job.TopK != nil {
		s.TopK = *job.TopK
	}
	if job.TopP != nil {
		s.TopP = float32(*job.TopP)
	}
	if job.Seed != nil {
		s.Seed = *job.Seed
	} else {
		h := fnv.New64a()
		h.Write([]byte(job.ID))
		s.Seed = h.Sum64()
	}
	return s
}

// selectLMPrecision is selectPrecision for a language model: its policy
// and ladder, and the formats the backend runs.
func (w *Worker) selectLMPrecision(t *task) (precision.Format, *gearbox.Error) {
	m := t.lm.served.m
	policy, measured := m.Precision.Initial, map[precision.Format]float64(nil)
	if e, ok := w.policies.Get(m.Name); ok {
		policy, measured = e.Precision, e.Measured
		if t.job.Precision == precision.Auto || t.job.Precision == "" {
			t.policyRev = e.Rev
		}
	}
	p, err := precision.SelectMeasured(t.job.Precision, policy, m.Precision.Ladder, t.job.MaxError, w.caps, measured)
	if err != nil {
		return "", gearbox.Errorf(gearbox.CodeBadRequest, "job %q: %v", t.job.ID, err)
	}
	return p, nil
}

// startLM hands t to its engine, waiting while the engine's KV cache is
// committed (backpressure: the worker stops pulling). It returns an error
// only when the worker stops hard.
func (w *Worker) startLM(ctx context.Context, t *task) error {
	e, err := w.engines.get(ctx, w, t.lm.served.m, t.prec)
	if err != nil {
		w.end(ctx, t, w.errorEnding(t, gearbox.Errorf(gearbox.CodeInternal, "language-model engine for %s at %s: %v", t.lm.served.m.Name, t.prec, err)))
		return nil
	}
	q := t.lm.seq
	q.Token = func(tk engine.Token) bool { return w.lmToken(t, tk) }
	q.Done = func(o *engine.Outcome) { w.lmDone(ctx, t, o) }
	w.lmRunning.Add(1)
	if err := e.Add(ctx, q); err != nil {
		w.lmRunning.Done()
		if errors.Is(err, engine.ErrTooLarge) {
			w.end(ctx, t, w.errorEnding(t, gearbox.Errorf(gearbox.CodeTooLarge, "job %q: %v", t.id(), err)))
			return nil
		}
		w.untrack(t)
		return err // a hard stop, or the engine closed: the job is redelivered
	}
	return nil
}

// lmToken follows a generated token: its text, stop strings, streaming.
// It runs on the engine's goroutine; it reports whether a stop string
// ended the generation.
func (w *Worker) lmToken(t *task, tk engine.Token) bool {
	l := t.lm
	if l.served.tok == nil {
		return false
	}
	if l.dec == nil {
		l.dec = l.served.tok.NewDecoder(true)
	}
	piece, _ := l.dec.Add(int(tk.ID)) // ids come from the model's own vocabulary
	from := max(l.text.Len()-l.maxStop, 0)
	l.text.WriteString(piece)
	l.chunkToks = append(l.chunkToks, tk.ID)
	stop := false
	if len(l.stops) > 0 {
		text := l.text.String()
		for _, s := range l.stops {
			if i := strings.Index(text[from:], s); i >= 0 && (l.stopAt < 0 || from+i < l.stopAt) {
				l.stopAt, stop = from+i, true
			}
		}
	}
	if t.job.Stream {
		// Hold back what a stop string could still turn out to begin.
		upto := l.text.Len() - max(l.maxStop-1, 0)
		if l.stopAt >= 0 {
			upto = l.stopAt
		}
		w.streamChunk(t, upto)
	}
	return stop
}

// streamChunk sends the text from what was streamed up to upto, if any,
// to t's reply_to.
func (w *Worker) streamChunk(t *task, upto int) {
	l := t.lm
	if upto <= l.streamed {
		return
	}
	c := gearbox.StreamChunk{ID: t.id(), Index: l.chunks, Text: l.text.String()[l.streamed:upto], Tokens: l.chunkToks}
	m, err := gearbox.NewMsg(t.replyTo, &c, t.enc)
	if err != nil {
		return
	}
	m.Header.Set(gearbox.HeaderStream, "chunk")
	if err := w.nc.PublishMsg(m); err != nil {
		w.log.Debug().Err(err).Str("job", t.id()).Msg("stream chunk")
	}
	l.streamed, l.chunks, l.chunkToks = upto, l.chunks+1, nil
}

// lmDone ends t with its engine's outcome. It runs on the engine's
// goroutine.
func (w *Worker) lmDone(ctx context.Context, t *task, o *engine.Outcome) {
	defer w.lmRunning.Done()
	if o.Err != nil {
		if ctx.Err() != nil || errors.Is(o.Err, engine.ErrClosed) {
			w.untrack(t) // a hard stop: the job is redelivered
			return
		}
		t.fail(gearbox.Errorf(gearbox.CodeInternal, "%v", o.Err))
		w.end(ctx, t, w.errorEnding(t, t.err))
		return
	}
	l := t.lm
	r := &gearbox.Result{
		ID: t.job.ID, Model: t.job.Model, Precision: t.prec, PolicyRev: t.policyRev, Worker: w.cfg.Name,
		QueuedMs: ms(o.Added.Sub(t.published)), ComputeMs: ms(o.Ended.Sub(o.Added)), Meta: t.job.Meta,
		Usage: &gearbox.Usage{PromptTokens: len(l.seq.Prompt), CompletionTokens: o.Sampled},
	}
	switch l.task {
	case gearbox.Embed:
		r.Output = embedding(o.Hidden, t.job.OutputDType)
		r.Usage.CompletionTokens = 0
	case gearbox.Score:
		r.Logprobs = make([]gearbox.TokenLogprob, len(o.Logprobs))
		for i, lp := range o.Logprobs {
			r.Logprobs[i] = gearbox.TokenLogprob{Token: l.seq.Prompt[i+1], Logprob: lp}
		}
		r.Usage.CompletionTokens = 0
	default:
		r.FinishReason = o.Reason
		r.TTFTMs = ms(o.FirstToken.Sub(t.published))
		for _, tk := range o.Tokens {
			r.Tokens = append(r.Tokens, tk.ID)
		}
		if l.served.tok != nil {
			if l.dec != nil {
				l.text.WriteString(l.dec.Flush())
			}
			text := l.text.String()
			if l.stopAt >= 0 {
				text = text[:l.stopAt]
			}
			r.Text = text
			if t.job.Stream {
				w.streamChunk(t, len(text))
			}
		}
		w.offerLMCheck(t, o)
		if t.job.Logprobs > 0 {
			r.Logprobs = make([]gearbox.TokenLogprob, len(o.Tokens))
			for i, tk := range o.Tokens {
				r.Logprobs[i] = gearbox.TokenLogprob{Token: tk.ID, Logprob: tk.Logprob}
				for _, alt := range tk.Top {
					r.Logprobs[i].Top = append(r.Logprobs[i].Top, gearbox.TokenLogprob{Token: alt.Token, Logprob: alt.Logprob})
				}
			}
		}
	}
	if w.met != nil {
		w.met.lmTokens.WithLabelValues(t.job.Model, string(t.prec), "prompt").Add(float64(len(l.seq.Prompt)))
		w.met.lmTokens.WithLabelValues(t.job.Model, string(t.prec), "generated").Add(float64(o.Sampled))
		if l.task == gearbox.Generate && !o.FirstToken.IsZero() {
			w.met.ttft.WithLabelValues(t.job.Model, string(t.prec)).Observe(o.FirstToken.Sub(o.Added).Seconds())
		}
	}
	w.end(ctx, t, ending{result: r})
}

// embedding is the L2-normalised hidden state as a [1, hidden] tensor of
// dtype (the job's output_dtype; f32 by default).
func embedding(h []float32, dtype gearbox.DType) *gearbox.Tensor {
	var ss float64
	for _, v := range h {
		ss += float64(v) * float64(v)
	}
	out := make([]float32, len(h))
	if n := math.Sqrt(ss); n > 0 {
		for i, v := range h {
			out[i] = float32(float64(v) / n)
		}
	}
	tn := gearbox.NewTensorAs(1, len(out), out, dtype)
	return &tn
}

// engines are a worker's language-model engines, one per (model version,
// precision), created on first use and closed when the worker stops.
type engines struct {
	mu   sync.Mutex
	all  map[engineKey]*engine.Engine
	wg   sync.WaitGroup
	ctx  context.Context // the worker's Run context
	stop context.CancelFunc
}

type engineKey struct {
	m *lm.Model
	p precision.Format
}

// get returns the engine of (m, p), starting it with a KV cache of the
// worker's budget.
func (es *engines) get(ctx context.Context, w *Worker, m *lm.Model, p precision.Format) (*engine.Engine, error) {
	es.mu.Lock()
	defer es.mu.Unlock()
	k := engineKey{m, p}
	if e := es.all[k]; e != nil {
		return e, nil
	}
	cfg, blocks, budget, err := lmEngineConfig(ctx, w.backend.(kernels.LM), m, p, w.cfg)
	if err != nil {
		return nil, err
	}
	if met := w.met; met != nil {
		itl := met.itl.WithLabelValues(m.Name, string(p))
		cfg.OnStep = func(decoded, _ int, took time.Duration) {
			if decoded > 0 {
				itl.Observe(took.Seconds())
			}
		}
	}
	e, err := engine.New(w.backend.(kernels.LM), m, p, blocks, cfg)
	if err != nil {
		return nil, err
	}
	if es.all == nil {
		es.all = map[engineKey]*engine.Engine{}
	}
	es.all[k] = e
	es.wg.Go(func() { _ = e.Run(es.ctx) })
	w.log.Info().Str("model", m.Name).Str("precision", string(p)).Int("kv_blocks", blocks).Int64("kv_bytes", budget).Msg("language-model engine started")
	return e, nil
}

// kvBudget is the memory of an engine's KV cache for m at p: on a
// backend with device memory and a KV fraction, that fraction of the
// memory free once m's weights for p are loaded (loading them first);
// otherwise cfg's KV bytes.
func kvBudget(ctx context.Context, b kernels.LM, m *lm.Model, p precision.Format, cfg Config) (int64, error) {
	dm, ok := b.(kernels.DeviceMemory)
	if !ok || cfg.KVFraction <= 0 {
		return cfg.KVBytes, nil
	}
	if err := kernels.WarmLM(ctx, b, m, p); err != nil {
		return 0, err
	}
	free, _, err := dm.MemoryInfo(ctx)
	if err != nil {
		return 0, err
	}
	return int64(cfg.KVFraction * float64(free)), nil
}

// kvBlocks is the number of KV blocks of an engine for m at p holding
// budget bytes: one block is its K and V for every layer,
// kernels.KVBlockSize tokens, in kernels.KVFormat(p) (kernels.KVBlockBytes:
// 2 bytes an element, 4 at fp32 and tf32, 1 and a scale per head's row at
// fp8 and fp4, which so hold about twice the tokens of bf16).
func kvBlocks(m *lm.Model, p precision.Format, budget int64) (int, error) {
	perBlock := kernels.KVBlockBytes(&m.Config, kernels.KVFormat(p))
	n := budget / perBlock
	if n < 1 {
		return 0, fmt.Errorf("a KV budget of %d bytes holds no block of %d bytes", budget, perBlock)
	}
	return int(min(n, math.MaxInt32)), nil
}

// stats are the engines' statistics now.
func (es *engines) stats() map[engineKey]engine.StepStats {
	es.mu.Lock()
	defer es.mu.Unlock()
	out := make(map[engineKey]engine.StepStats, len(es.all))
	for k, e := range es.all {
		out[k] = e.Stats()
	}
	return out
}

// close stops every engine (ending what they hold) and waits for them.
func (es *engines) close() {
	es.mu.Lock()
	all := es.all
	es.all = nil
	es.mu.Unlock()
	for _, e := range all {
		_ = e.Close()
	}
	es.wg.Wait()
}

// replyHeaders marks the result sent to a streaming job's reply_to.
func replyHeaders(t *task, m *nats.Msg) {
	if t.job != nil && t.job.Stream && t.lm != nil {
		m.Header.Set(gearbox.HeaderStream, "end")
	}
}
