package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

var t0 = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

// fake answers a planned step as a model that always samples
// 100 + position, so every token says where it was sampled.
func fake(b *kernels.Batch) []kernels.SeqOut {
	outs := make([]kernels.SeqOut, len(b.Seqs))
	for i, s := range b.Seqs {
		if s.Want&kernels.WantSample != 0 {
			outs[i].Token = int32(100 + s.Pos + len(s.Tokens))
		}
		if s.Want&kernels.WantLogprobs != 0 {
			n := len(s.Tokens) - 1
			if s.Want&kernels.WantTarget != 0 {
				n++
			}
			outs[i].Logprobs = make([]float32, n)
			for j := range outs[i].Logprobs {
				outs[i].Logprobs[j] = -float32(s.Pos + j + 1)
			}
		}
		if s.Want&kernels.WantHidden != 0 {
			outs[i].Hidden = []float32{float32(s.Pos + len(s.Tokens))}
		}
	}
	return outs
}

// describe renders a batch: "tokens@pos:want" per sequence.
func describe(b *kernels.Batch) string {
	if b == nil {
		return "-"
	}
	var parts []string
	for _, s := range b.Seqs {
		w := ""
		for bit, c := range map[kernels.Want]string{kernels.WantSample: "s", kernels.WantLogprobs: "l", kernels.WantHidden: "h", kernels.WantTarget: "t"} {
			if s.Want&bit != 0 {
				w += c
			}
		}
		parts = append(parts, fmt.Sprintf("%d@%d:%s", len(s.Tokens), s.Pos, sortChars(w)))
	}
	return strings.Join(parts, " ")
}

func sortChars(s string) string {
	b := []byte(s)
	slices.Sort(b)
	return string(b)
}

func prompt(n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i + 1)
	}
	return p
}

// run steps s until nothing is left, returning each step's description
// and the outcomes by sequence.
func run(t *testing.T, s *Scheduler, max int) ([]string, map[*Seq]*Outcome) {
	t.Helper()
	var steps []string
	out := map[*Seq]*Outcome{}
	now := t0
	for range max {
		b := s.Plan(now)
		for _, e := range s.Ended() {
			out[e.Seq] = e.Outcome
		}
		if b == nil {
			return steps, out
		}
		checkBlocks(t, s)
		steps = append(steps, describe(b))
		now = now.Add(time.Millisecond)
		s.Apply(fake(b), now)
		checkBlocks(t, s)
		for _, e := range s.Ended() {
			out[e.Seq] = e.Outcome
		}
	}
	t.Fatalf("not done after %d steps", max)
	return nil, nil
}

func TestSchedulerDecodeFirstChunkedPrefill(t *testing.T) {
	s := NewScheduler(Config{TokenBudget: 8}, 64, 4, 128)
	a := &Seq{Prompt: prompt(3), MaxTokens: 3}
	b := &Seq{Prompt: prompt(11), MaxTokens: 2}
	for _, q := range []*Seq{a, b} {
		if err := s.Add(q, t0); err != nil {
			t.Fatal(err)
		}
	}
	steps, out := run(t, s, 20)
	want := []string{
		"3@0:s 5@0:",   // a's prompt (samples its first token), b's first chunk
		"1@3:s 6@5:s",  // a decodes; b's last chunk samples
		"1@4:s 1@11:s", // a's third token and b's second end both
	}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps\n got %q\nwant %q", steps, want)
	}
	if got := ids(out[a].Tokens); !slices.Equal(got, []int32{103, 104, 105}) || out[a].Reason != FinishLength {
		t.Errorf("a: %v %s", got, out[a].Reason)
	}
	if got := ids(out[b].Tokens); !slices.Equal(got, []int32{111, 112}) || out[b].Reason != FinishLength {
		t.Errorf("b: %v %s", got, out[b].Reason)
	}
	if s.bl.Free() != 64 {
		t.Errorf("%d of 64 blocks free after everything ended", s.bl.Free())
	}
}

func ids(ts []Token) []int32 {
	out := make([]int32, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// TestSchedulerPreemptRecompute: with too few blocks for two growing
// sequences, the one admitted last is preempted, recomputed from its
// prompt and generated tokens, and ends with exactly the tokens it would
// have made alone.
func TestSchedulerPreemptRecompute(t *testing.T) {
	alone := func() []int32 {
		s := NewScheduler(Config{}, 16, 2, 64)
		q := &Seq{Prompt: prompt(4), MaxTokens: 6}
		_ = s.Add(q, t0)
		_, out := run(t, s, 50)
		return ids(out[q].Tokens)
	}()
	s := NewScheduler(Config{}, 7, 2, 64) // 14 positions for two sequences of 10
	a := &Seq{Prompt: prompt(4), MaxTokens: 6}
	b := &Seq{Prompt: prompt(4), MaxTokens: 6}
	_ = s.Add(a, t0)
	_ = s.Add(b, t0)
	_, out := run(t, s, 100)
	for name, q := range map[string]*Seq{"a": a, "b": b} {
		if got := ids(out[q].Tokens); !slices.Equal(got, alone) {
			t.Errorf("%s: %v; want %v as alone", name, got, alone)
		}
	}
	if s.preemptions == 0 || out[b].Preempted == 0 {
		t.Errorf("preemptions %d (b: %d); want b preempted", s.preemptions, out[b].Preempted)
	}
	if out[a].Preempted != 0 {
		t.Errorf("a was preempted %d times; want the later sequence to give way", out[a].Preempted)
	}
}

func TestSchedulerEnds(t *testing.T) {
	s := NewScheduler(Config{}, 32, 4, 10)
	eos := &Seq{Prompt: prompt(2), MaxTokens: 5, EOS: []int32{104}} // samples 102, 103, 104 (eos)
	ctxEnd := &Seq{Prompt: prompt(7), MaxTokens: 50}                // the model has 10 positions
	stopper := &Seq{Prompt: prompt(2), MaxTokens: 9}                // the caller stops it at 103
	late := &Seq{Prompt: prompt(2), MaxTokens: 9, Deadline: t0.Add(2 * time.Millisecond)}
	score := &Seq{Task: Score, Prompt: prompt(6)}
	embed := &Seq{Task: Embed, Prompt: prompt(5)}
	stopper.Token = func(tk Token) bool { return tk.ID == 103 }
	for _, q := range []*Seq{eos, ctxEnd, stopper, late, score, embed} {
		if err := s.Add(q, t0); err != nil {
			t.Fatal(err)
		}
	}
	_, out := run(t, s, 50)
	check := func(name string, o *Outcome, reason string, toks []int32, sampled int) {
		t.Helper()
		if o.Reason != reason || !slices.Equal(ids(o.Tokens), toks) || o.Sampled != sampled {
			t.Errorf("%s: %s %v (%d sampled); want %s %v (%d)", name, o.Reason, ids(o.Tokens), o.Sampled, reason, toks, sampled)
		}
	}
	check("eos", out[eos], FinishStop, []int32{102, 103}, 3)
	check("context", out[ctxEnd], FinishLength, []int32{107, 108, 109}, 3)
	check("stop", out[stopper], FinishStop, []int32{102, 103}, 2)
	check("deadline", out[late], FinishDeadline, []int32{102, 103}, 2)
	if got := out[score].Logprobs; len(got) != 5 || got[0] != -1 || got[4] != -5 {
		t.Errorf("score: %v; want 5 log-probabilities, of positions 1 to 5", got)
	}
	if got := out[embed].Hidden; len(got) != 1 || got[0] != 5 {
		t.Errorf("embed: %v", got)
	}
}

// TestSchedulerScoreInChunks: a prompt scored in several chunks gets one
// log-probability per token after the first, the chunk boundaries
// included.
func TestSchedulerScoreInChunks(t *testing.T) {
	s := NewScheduler(Config{TokenBudget: 4}, 32, 4, 64)
	q := &Seq{Task: Score, Prompt: prompt(10)}
	_ = s.Add(q, t0)
	steps, out := run(t, s, 10)
	if want := []string{"4@0:lt", "4@4:lt", "2@8:l"}; !slices.Equal(steps, want) {
		t.Errorf("steps %q; want %q", steps, want)
	}
	got := out[q].Logprobs
	if len(got) != 9 {
		t.Fatalf("%d log-probabilities; want 9", len(got))
	}
	for i, v := range got {
		if v != -float32(i+1) {
			t.Errorf("logprob %d = %v; want %v", i, v, -float32(i+1))
		}
	}
}

func TestSchedulerAddChecks(t *testing.T) {
	s := NewScheduler(Config{}, 4, 4, 32) // 16 positions of cache
	cases := []struct {
		q    *Seq
		want error
	}{
		{&Seq{Prompt: prompt(40), MaxTokens: 1}, ErrTooLarge},
		{&Seq{Prompt: prompt(10), MaxTokens: 10}, ErrTooLarge},
		{&Seq{Prompt: prompt(10), MaxTokens: 6}, nil},
	}
	for _, c := range cases {
		if err := s.Add(c.q, t0); !errors.Is(err, c.want) {
			t.Errorf("Add(prompt %d, max %d) = %v; want %v", len(c.q.Prompt), c.q.MaxTokens, err, c.want)
		}
	}
}

// TestSchedulerPriority: a higher-priority sequence is prefilled first.
func TestSchedulerPriority(t *testing.T) {
	s := NewScheduler(Config{TokenBudget: 3}, 32, 4, 64)
	low := &Seq{Prompt: prompt(3), MaxTokens: 1}
	high := &Seq{Prompt: prompt(3), MaxTokens: 1, Priority: 5}
	_ = s.Add(low, t0)
	_ = s.Add(high, t0)
	b := s.Plan(t0)
	if len(b.Seqs) != 1 || s.planned[0] != high {
		t.Errorf("first step prefills %v; want the high-priority sequence", describe(b))
	}
}
