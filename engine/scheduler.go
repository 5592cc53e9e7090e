package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

// ErrTooLarge is wrapped by Scheduler.Add for a sequence that could never
// run: its prompt and generation need more positions than the model has, or
// more blocks than the whole cache.
var ErrTooLarge = errors.New("engine: sequence too large")

// Config sets how steps are formed. Zero fields take the defaults in their
// comments.
type Config struct {
	// TokenBudget is the most tokens one step feeds, decodes and prefill
	// chunks together (default 2048).
	TokenBudget int
	// MaxSeqs is the most sequences in one step (default 256).
	MaxSeqs int
	// NoPrefixCache turns prefix sharing off (default on: sequences whose
	// prompts start alike share the K/V blocks of what they have in
	// common; see prefix.go).
	NoPrefixCache bool
	// OnStep, when set, is called by Engine after each step with the
	// tokens it decoded and prefilled and how long it took (for metrics).
	OnStep func(decoded, prefilled int, took time.Duration)
}

func (c Config) withDefaults() Config {
	if c.TokenBudget <= 0 {
		c.TokenBudget = 2048
	}
	if c.MaxSeqs <= 0 {
		c.MaxSeqs = 256
	}
	return c
}

// Scheduler is the deterministic core of an engine: it holds the sequences
// of one KV cache, plans each step and applies its outputs. It is told the
// time, starts no goroutine and calls no backend. It is not safe for
// concurrent use.
type Scheduler struct {
	cfg     Config
	bl      *blocks
	maxPos  int
	running []*Seq // admission order
	waiting []*Seq // priority, then admission order
	order   uint64
	planned []*Seq // the sequences of the step planned, in batch order
	batch   kernels.Batch
	ended   []*Seq // sequences that ended since the last Ended call
	outcome map[*Seq]*Outcome
	// preemptions counts the sequences preempted so far; reused the
	// prompt tokens taken from the prefix cache instead of prefilled.
	preemptions, reused int
	// decodes is how many of the planned step's sequences (its first)
	// decode; peak the most blocks held at a plan's end.
	decodes, peak int
	// acc is Committed's accounting (committed.go).
	acc accounting
}

// NewScheduler returns a scheduler for a cache of nBlocks blocks of
// blockSize tokens, for a model of maxPos positions.
func NewScheduler(cfg Config, nBlocks, blockSize, maxPos int) *Scheduler {
	s := &Scheduler{cfg: cfg.withDefaults(), bl: newBlocks(nBlocks, blockSize), maxPos: maxPos, outcome: map[*Seq]*Outcome{}}
	s.bl.onHeld = s.onHeld
	return s
}

// Need is the most blocks q can hold: for its prompt and its whole
// generation.
func (s *Scheduler) Need(q *Seq) int {
	n := len(q.Prompt)
	if q.Task == Generate {
		n += q.MaxTokens
	}
	return s.bl.forTokens(min(n, s.maxPos))
}

// Add queues q at now. It returns an error wrapping ErrTooLarge when q
// could never run.
func (s *Scheduler) Add(q *Seq, now time.Time) error {
	switch {
	case len(q.Prompt) == 0:
		return fmt.Errorf("engine: empty prompt")
	case len(q.Prompt) > s.maxPos:
		return fmt.Errorf("%w: a prompt of %d tokens; the model takes %d", ErrTooLarge, len(q.Prompt), s.maxPos)
	case q.Task == Generate && q.MaxTokens < 1:
		return fmt.Errorf("engine: max tokens %d", q.MaxTokens)
	case s.Need(q) > s.bl.n:
		return fmt.Errorf("%w: %d KV blocks needed; the cache has %d", ErrTooLarge, s.Need(q), s.bl.n)
	}
	s.order++
	q.order, q.added = s.order, now
	q.tokens = slices.Clone(q.Prompt)
	s.enqueue(q)
	return nil
}

// enqueue puts q in the waiting queue: after the sequences of higher or
// equal priority admitted before it.
func (s *Scheduler) enqueue(q *Seq) {
	i := len(s.waiting)
	for i > 0 && (s.waiting[i-1].Priority < q.Priority ||
		s.waiting[i-1].Priority == q.Priority && s.waiting[i-1].order > q.order) {
		i--
	}
	s.waiting = slices.Insert(s.waiting, i, q)
	q.waiting = true
	s.count(q)
}

// Committed is the blocks the queued sequences hold or will need for what
// is known of them: the blocks their tables hold (a shared block once),
// and what waiting prompts still need (a prefix they have in common, or
// that is held already, once). Capacity is the cache's blocks. An engine
// admits new sequences while Committed is below Capacity.
func (s *Scheduler) Committed() int { return s.committed(nil) }

// Capacity is the number of blocks of the cache.
func (s *Scheduler) Capacity() int { return s.bl.n }

// Len is the number of sequences queued: running and waiting.
func (s *Scheduler) Len() int { return len(s.running) + len(s.waiting) }

// Plan ends the sequences past their deadline at now and returns the next
// step's batch, or nil when nothing is queued. The batch is valid until
// Apply or Fail.
func (s *Scheduler) Plan(now time.Time) *kernels.Batch {
	for _, q := range slices.Concat(s.running, s.waiting) {
		if !q.Deadline.IsZero() && !now.Before(q.Deadline) {
			s.end(q, FinishDeadline, now)
		}
	}
	s.planned, s.batch.Seqs = s.planned[:0], s.batch.Seqs[:0]
	budget := s.cfg.TokenBudget

	// Decode first: one token for every running sequence.
	for i := 0; i < len(s.running) && budget > 0 && len(s.planned) < s.cfg.MaxSeqs; i++ {
		q := s.running[i]
		if !s.grow(q, q.fed+1) {
			i-- // q itself was preempted: the next one moved into its place
			continue
		}
		s.add(q, kernels.Seq{Tokens: q.tokens[q.fed : q.fed+1], Pos: q.fed, Blocks: q.table,
			Want: kernels.WantSample, Sampling: q.Sampling})
		budget--
	}
	s.decodes = len(s.planned)
	// Then prefill waiting sequences, in chunks, while budget and blocks
	// last; a sequence whose prefix another is computing now waits for
	// it, and the next goes ahead.
	for i := 0; i < len(s.waiting) && budget > 0 && len(s.planned) < s.cfg.MaxSeqs; {
		q := s.waiting[i]
		// Admission may give q blocks: out of the accounting until the
		// loop is done, then counted again as it is (recount).
		s.uncount(q)
		s.acc.dirty = append(s.acc.dirty, q)
		if !s.reuse(q) {
			i++
			continue
		}
		n := min(len(q.tokens)-q.fed, budget)
		// Take the free blocks, less one per running sequence: the
		// watermark that keeps decoding from preempting at once what a
		// prefill just admitted.
		free := max(s.bl.Free()-len(s.running), 0)
		if room := (len(q.table)+free)*s.bl.size - q.fed; room < n {
			n = room
		}
		if n <= 0 || !s.grow(q, q.fed+n) {
			break
		}
		s.enter(q)
		last := q.fed+n == len(q.tokens)
		seq := kernels.Seq{Tokens: q.tokens[q.fed : q.fed+n], Pos: q.fed, Blocks: q.table, Sampling: q.Sampling}
		switch {
		case q.Task == Score:
			seq.Want = kernels.WantLogprobs
			if !last {
				seq.Want |= kernels.WantTarget
				seq.Target = q.tokens[q.fed+n]
			}
		case !last:
		case q.Task == Generate:
			seq.Want = kernels.WantSample
		case q.Task == Embed:
			seq.Want = kernels.WantHidden
		}
		s.add(q, seq)
		budget -= n
		if !last {
			break // its next chunk goes first next step
		}
		i = slices.Index(s.waiting, q) // where it is still, unless grow preempted
		s.waiting = slices.Delete(s.waiting, i, i+1)
		q.waiting = false
		if q.Task == Generate {
			q.running = true
			s.running = append(s.running, q)
		} else {
			s.running = append(s.running, q) // until Apply ends it
		}
	}
	s.recount()
	s.peak = max(s.peak, s.bl.Held())
	if len(s.planned) == 0 {
		return nil
	}
	return &s.batch
}

// grow gives q blocks for n positions, preempting the running sequences
// admitted last (lowest priority first) while blocks are short. It
// reports false when q itself had to be preempted (or cannot grow).
func (s *Scheduler) grow(q *Seq, n int) bool {
	need := s.bl.forTokens(n) - len(q.table)
	for need > s.bl.Free() {
		v := s.victim(q)
		if v == nil {
			return false
		}
		s.preempt(v)
		if v == q {
			return false
		}
	}
	q.table, _ = s.bl.take(q.table, need)
	return true
}

// victim is the running sequence to preempt for q: the lowest priority,
// then the latest admitted, not already in the step; q itself when no
// other will do (and q is running). Nil when none.
func (s *Scheduler) victim(q *Seq) *Seq {
	var v *Seq
	for _, r := range s.running {
		if r == q || slices.Contains(s.planned, r) {
			continue
		}
		if v == nil || r.Priority < v.Priority || r.Priority == v.Priority && r.order > v.order {
			v = r
		}
	}
	if v == nil && q.running {
		return q
	}
	return v
}

// preempt frees q's blocks and puts it back to wait, to be prefilled again
// from its prompt and generated tokens.
func (s *Scheduler) preempt(q *Seq) {
	s.bl.release(q.table)
	q.table, q.fed, q.sealed, q.running = nil, 0, 0, false
	q.preempted++
	s.preemptions++
	s.running = slices.DeleteFunc(s.running, func(r *Seq) bool { return r == q })
	s.enqueue(q)
}

func (s *Scheduler) add(q *Seq, seq kernels.Seq) {
	s.planned = append(s.planned, q)
	s.batch.Seqs = append(s.batch.Seqs, seq)
}

// Apply applies the outputs of the step Plan returned (one per sequence,
// in batch order) at now.
func (s *Scheduler) Apply(outs []kernels.SeqOut, now time.Time) {
	for i, q := range s.planned {
		in, out := s.batch.Seqs[i], outs[i]
		q.fed += len(in.Tokens)
		s.seal(q)
		switch q.Task {
		case Score:
			q.logprobs = append(q.logprobs, out.Logprobs...)
			if q.fed == len(q.tokens) {
				q.first = now
				s.end(q, "", now)
			}
		case Embed:
			if in.Want&kernels.WantHidden != 0 {
				q.first = now
				s.outcome[q] = &Outcome{Hidden: out.Hidden}
				s.end(q, "", now)
			}
		case Generate:
			if in.Want&kernels.WantSample == 0 {
				continue // a prompt chunk
			}
			s.sampled(q, Token{ID: out.Token, Logprob: out.Logprob, Top: out.Top}, now)
		}
	}
	s.planned, s.batch.Seqs = s.planned[:0], s.batch.Seqs[:0]
}

// sampled records a generated token and ends the generation when it
// should.
func (s *Scheduler) sampled(q *Seq, t Token, now time.Time) {
	q.sampled++
	if q.first.IsZero() {
		q.first = now
	}
	if slices.Contains(q.EOS, t.ID) {
		s.end(q, FinishStop, now)
		return
	}
	q.tokens = append(q.tokens, t.ID)
	q.gen = append(q.gen, t)
	stop := q.Token != nil && q.Token(t)
	switch {
	case stop:
		s.end(q, FinishStop, now)
	case len(q.gen) >= q.MaxTokens, len(q.tokens) >= s.maxPos:
		s.end(q, FinishLength, now)
	}
}

// Fail ends every sequence of the planned step with err.
func (s *Scheduler) Fail(err error, now time.Time) {
	for _, q := range s.planned {
		s.outcome[q] = &Outcome{Err: err}
		s.end(q, "", now)
	}
	s.planned, s.batch.Seqs = s.planned[:0], s.batch.Seqs[:0]
}

// end removes q, frees its blocks and records its outcome.
func (s *Scheduler) end(q *Seq, reason string, now time.Time) {
	s.uncount(q)
	q.waiting = false
	s.bl.release(q.table)
	q.table, q.sealed = nil, 0
	s.running = slices.DeleteFunc(s.running, func(r *Seq) bool { return r == q })
	s.waiting = slices.DeleteFunc(s.waiting, func(r *Seq) bool { return r == q })
	o := s.outcome[q]
	if o == nil {
		o = &Outcome{}
		s.outcome[q] = o
	}
	if o.Err == nil {
		o.Tokens, o.Reason, o.Sampled, o.Logprobs = q.gen, reason, q.sampled, q.logprobs
	}
	o.Added, o.FirstToken, o.Ended, o.Preempted = q.added, q.first, now, q.preempted
	s.ended = append(s.ended, q)
}

// Ended returns the sequences that ended since the last call, with their
// outcomes, for the caller to report (Seq.Done) outside its step.
func (s *Scheduler) Ended() []Ended {
	out := make([]Ended, len(s.ended))
	for i, q := range s.ended {
		out[i] = Ended{Seq: q, Outcome: s.outcome[q]}
		delete(s.outcome, q)
	}
	s.ended = s.ended[:0]
	return out
}

// Ended is a sequence and its outcome.
type Ended struct {
	Seq     *Seq
	Outcome *Outcome
}
