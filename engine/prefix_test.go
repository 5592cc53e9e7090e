package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// checkBlocks checks the allocator against the sequences s holds: every
// block's reference count is the number of block tables naming it; a
// block is free, cached or held; the table names exactly the entered
// blocks; the cached list holds exactly the ready blocks nobody holds.
func checkBlocks(t *testing.T, s *Scheduler) {
	t.Helper()
	bl := s.bl
	refs := make([]int32, bl.n)
	for _, q := range slices.Concat(s.running, s.waiting) {
		for i, x := range q.table {
			refs[x]++
			if i < q.sealed && !s.cfg.NoPrefixCache && bl.state[x] == pending {
				t.Fatalf("block %d of a sequence is sealed but pending", i)
			}
		}
	}
	free := map[int32]bool{}
	for _, x := range bl.free {
		free[x] = true
	}
	cached := map[int32]bool{}
	for x := bl.head; x >= 0; x = bl.next[x] {
		cached[x] = true
	}
	if len(cached) != bl.cached || len(free) != len(bl.free) {
		t.Fatalf("cached list %d (counted %d), free %d (stack %d)", len(cached), bl.cached, len(free), len(bl.free))
	}
	for x := range int32(bl.n) {
		switch {
		case refs[x] != bl.ref[x]:
			t.Fatalf("block %d: %d references; tables name it %d times", x, bl.ref[x], refs[x])
		case free[x] && (cached[x] || refs[x] > 0 || bl.state[x] != unentered):
			t.Fatalf("free block %d: cached %v, %d references, state %d", x, cached[x], refs[x], bl.state[x])
		case cached[x] && (refs[x] > 0 || bl.state[x] != ready):
			t.Fatalf("cached block %d: %d references, state %d", x, refs[x], bl.state[x])
		case !free[x] && !cached[x] && refs[x] == 0:
			t.Fatalf("block %d is lost: not free, cached or held", x)
		case bl.state[x] != unentered && bl.table[bl.key[x]] != x:
			t.Fatalf("block %d is entered but the table names %d", x, bl.table[bl.key[x]])
		}
	}
	for k, x := range bl.table {
		if bl.key[x] != k || bl.state[x] == unentered {
			t.Fatalf("table entry for block %d: key or state %d wrong", x, bl.state[x])
		}
	}
}

// committedPerBlock is Committed summed over the waiting queue a block at
// a time, in queue order: a key counted by an earlier waiting sequence's
// chain, or whose block a sequence holds, is not needed again.
func committedPerBlock(s *Scheduler, extra *Seq) int {
	seen := map[blockKey]bool{}
	need := func(q *Seq, toks []int32) int {
		n := s.bl.forTokens(len(toks) + 1)
		if !s.shares(q) {
			return n
		}
		for _, k := range s.chain(q, toks, s.reusable(toks)) {
			if seen[k] || s.bl.held(k) {
				n--
			}
			seen[k] = true
		}
		return n
	}
	n := s.bl.Held()
	for _, q := range s.waiting {
		if len(q.table) > 0 {
			n += max(s.bl.forTokens(len(q.tokens)+1)-len(q.table), 0)
			continue
		}
		n += need(q, q.tokens)
	}
	if extra != nil {
		n += need(extra, extra.Prompt)
	}
	return n
}

// checkCommitted checks the scheduler's running Committed against the sum
// a block at a time.
func checkCommitted(t *testing.T, s *Scheduler) {
	t.Helper()
	if got, want := s.Committed(), committedPerBlock(s, nil); got != want {
		t.Fatalf("committed %d; a block at a time %d", got, want)
	}
}

// step plans and applies one step at now with the fake model, checking
// the blocks after it; it returns the step's description.
func step(t *testing.T, s *Scheduler, now time.Time) string {
	t.Helper()
	b := s.Plan(now)
	checkBlocks(t, s)
	checkCommitted(t, s)
	if b == nil {
		return "-"
	}
	d := describe(b)
	s.Apply(fake(b), now)
	checkBlocks(t, s)
	checkCommitted(t, s)
	return d
}

func withTail(p []int32, tail ...int32) []int32 { return append(slices.Clone(p), tail...) }

// steps adds qs to s at t0 and steps it a millisecond apart until nothing
// is left, returning each step's description and the outcomes.
func steps(t *testing.T, s *Scheduler, qs ...*Seq) ([]string, map[*Seq]*Outcome) {
	t.Helper()
	for _, q := range qs {
		if err := s.Add(q, t0); err != nil {
			t.Fatal(err)
		}
	}
	var ds []string
	out := map[*Seq]*Outcome{}
	for now := t0; s.Len() > 0; now = now.Add(time.Millisecond) {
		d := step(t, s, now)
		if d == "-" {
			t.Fatal("nothing planned with sequences left")
		}
		ds = append(ds, d)
		for _, e := range s.Ended() {
			out[e.Seq] = e.Outcome
		}
	}
	return ds, out
}

// TestPrefixArrivesMidPrefill: a sequence whose prefix another is still
// prefilling waits for its blocks to be written, then starts after them;
// a sequence with another prompt goes ahead meanwhile.
func TestPrefixArrivesMidPrefill(t *testing.T) {
	s := NewScheduler(Config{TokenBudget: 8}, 32, 4, 128)
	p := prompt(12)
	a := &Seq{Prompt: withTail(p, 50, 51), MaxTokens: 3}
	b := &Seq{Prompt: withTail(p, 60), MaxTokens: 2}
	other := &Seq{Prompt: []int32{9, 9}, MaxTokens: 1}
	got, _ := steps(t, s, a, b, other)
	want := []string{
		"8@0:",          // a's first chunk; b waits for its blocks, other has no room in the budget
		"6@8:s 2@0:s",   // a's last chunk; b still waits (block 2 is being written), other goes ahead
		"1@14:s 1@12:s", // a decodes; b takes 3 blocks and feeds its last token
		"1@15:s 1@13:s",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("steps\n got %q\nwant %q", got, want)
	}
	if s.reused != 12 {
		t.Errorf("%d tokens reused; want 12", s.reused)
	}
	if s.bl.Held() != 0 || s.bl.Free() != 32 {
		t.Errorf("%d blocks held, %d free after everything ended; want 0, 32", s.bl.Held(), s.bl.Free())
	}
}

// TestPrefixLastTokenFed: a prompt entirely in cached blocks still feeds
// its last block (the one its first token is sampled from): the last,
// partial block of a sequence is never shared.
func TestPrefixLastTokenFed(t *testing.T) {
	s := NewScheduler(Config{}, 16, 4, 128)
	first := &Seq{Prompt: prompt(12), MaxTokens: 4} // fills 4 blocks
	_ = s.Add(first, t0)
	steps, _ := run(t, s, 20)
	again := &Seq{Prompt: prompt(12), MaxTokens: 1}
	_ = s.Add(again, t0)
	more, out := run(t, s, 20)
	steps = append(steps, more...)
	if want := []string{"12@0:s", "1@12:s", "1@13:s", "1@14:s", "4@8:s"}; !slices.Equal(steps, want) {
		t.Errorf("steps %q; want %q", steps, want)
	}
	if got := ids(out[again].Tokens); !slices.Equal(got, []int32{112}) {
		t.Errorf("tokens %v; want [112]", got)
	}
}

// TestPrefixCommittedOnce: sequences that share a prefix commit and hold
// its blocks once, waiting and running.
func TestPrefixCommittedOnce(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("off=%v", off), func(t *testing.T) {
			const n = 10
			s := NewScheduler(Config{NoPrefixCache: off}, 256, 4, 128)
			p := prompt(64) // 16 blocks
			var qs []*Seq
			for i := range n {
				q := &Seq{Prompt: withTail(p, int32(200+i), 7, 7), MaxTokens: 3} // 67 tokens
				if i == n-1 {
					if got, want := s.committed(q), s.Committed()+1; !off && got != want {
						t.Errorf("committed with the last one %d; want %d (its suffix's block)", got, want)
					}
				}
				_ = s.Add(q, t0)
				qs = append(qs, q)
			}
			perSeq, shared := 17, 16 // blocks for 68 positions; those of the prefix
			want := n * perSeq
			if !off {
				want = shared + n*(perSeq-shared)
			}
			if got := s.Committed(); got != want {
				t.Errorf("committed %d waiting; want %d", got, want)
			}
			step(t, s, t0)
			step(t, s, t0)
			if got := s.Committed(); got != want {
				t.Errorf("committed %d running; want %d", got, want)
			}
			if got := s.bl.Held(); got != want {
				t.Errorf("%d blocks held; want %d", got, want)
			}
			if !off {
				for _, q := range qs[1:] {
					if !slices.Equal(q.table[:shared], qs[0].table[:shared]) {
						t.Fatalf("tables %v and %v do not share the prefix's blocks", q.table, qs[0].table)
					}
				}
				if got := s.bl.ref[qs[0].table[0]]; got != n {
					t.Errorf("a prefix block has %d references; want %d", got, n)
				}
			}
		})
	}
}

// TestPrefixEviction: the blocks of ended sequences stay cached for a
// later prompt with their prefix, never reduce what the cache can hold,
// and are evicted least recently released first (a chain's tail before
// its head).
func TestPrefixEviction(t *testing.T) {
	s := NewScheduler(Config{}, 12, 4, 128)
	pa, pb := prompt(16), withTail(prompt(8), 90, 91, 92, 93, 94, 95, 96, 97) // 4 full blocks each
	for _, p := range [][]int32{pa, pb} {
		_ = s.Add(&Seq{Prompt: p, MaxTokens: 1}, t0)
		run(t, s, 10)
	}
	// pa's 4 blocks and pb's last 2 are cached (pb's first 2 are pa's).
	if s.bl.cached != 6 || s.bl.Free() != 12 {
		t.Fatalf("%d cached, %d free; want 6 cached, all 12 free", s.bl.cached, s.bl.Free())
	}
	// The cached list, least recently released first: pa's blocks 3, 2,
	// pb's 3, 2, then the two they share. Needing 9 blocks (6 are
	// never-cached) evicts pa's last two and pb's last.
	big := &Seq{Prompt: slices.Repeat([]int32{5}, 35), MaxTokens: 1}
	_ = s.Add(big, t0)
	big.Done = func(*Outcome) {}
	b := s.Plan(t0)
	if describe(b) != "35@0:s" {
		t.Fatalf("step %s; want the whole prompt", describe(b))
	}
	checkBlocks(t, s)
	s.Apply(fake(b), t0)
	s.Ended()
	checkBlocks(t, s)
	for _, c := range []struct {
		p    []int32
		want int // tokens reused
	}{{pb, 12}, {pa, 8}} {
		q := &Seq{Prompt: withTail(c.p, 1), MaxTokens: 1}
		_ = s.Add(q, t0)
		before := s.reused
		run(t, s, 10)
		if got := s.reused - before; got != c.want {
			t.Errorf("prompt %v reused %d tokens; want %d", c.p[8:], got, c.want)
		}
	}
}

// TestPrefixPreempt: sequences sharing a prefix on a cache too small for
// all of them are preempted, release their references, reuse what is
// still cached on re-admission, and end with the tokens they make alone.
func TestPrefixPreempt(t *testing.T) {
	p := prompt(8)
	alone := func(q *Seq) []int32 {
		s := NewScheduler(Config{NoPrefixCache: true}, 64, 4, 64)
		_ = s.Add(q, t0)
		_, out := run(t, s, 50)
		return ids(out[q].Tokens)
	}
	s := NewScheduler(Config{}, 9, 4, 64) // 2 prefix blocks and 7 for 3 sequences growing to 6 blocks each
	var qs []*Seq
	for i := range 3 {
		qs = append(qs, &Seq{Prompt: withTail(p, int32(i)), MaxTokens: 14})
	}
	_, out := steps(t, s, qs...)
	preempted := 0
	for i, q := range qs {
		preempted += out[q].Preempted
		if got, want := ids(out[q].Tokens), alone(&Seq{Prompt: q.Prompt, MaxTokens: q.MaxTokens}); !slices.Equal(got, want) {
			t.Errorf("sequence %d: %v; want %v as alone", i, got, want)
		}
	}
	if preempted == 0 {
		t.Error("no preemption; want some on a cache this small")
	}
	if s.reused <= 2*8 {
		t.Errorf("%d tokens reused; want more than the two later sequences' prefix (re-admissions reuse too)", s.reused)
	}
	if s.bl.Held() != 0 || s.bl.Free() != 9 {
		t.Errorf("%d held, %d free after the end; want 0, 9", s.bl.Held(), s.bl.Free())
	}
}

// TestPrefixScoreDoesNotReuse: a score sequence computes every row (it
// needs each one's log-probability) even when its prefix is cached.
func TestPrefixScoreDoesNotReuse(t *testing.T) {
	s := NewScheduler(Config{}, 16, 4, 64)
	_ = s.Add(&Seq{Prompt: prompt(9), MaxTokens: 1}, t0)
	run(t, s, 10)
	q := &Seq{Task: Score, Prompt: prompt(9)}
	_ = s.Add(q, t0)
	steps, out := run(t, s, 10)
	if want := []string{"9@0:l"}; !slices.Equal(steps, want) || len(out[q].Logprobs) != 8 {
		t.Errorf("steps %q, %d log-probabilities; want %q, 8", steps, len(out[q].Logprobs), want)
	}
}

// TestPrefixWriterEnds: when the sequence writing a prefix ends midway
// (here at its deadline), its half-written block leaves the table and a
// sequence waiting for it takes the written blocks and prefills the rest
// itself.
func TestPrefixWriterEnds(t *testing.T) {
	s := NewScheduler(Config{TokenBudget: 6}, 32, 4, 128)
	p := prompt(12)
	a := &Seq{Prompt: withTail(p, 50), MaxTokens: 4, Deadline: t0.Add(time.Millisecond)}
	b := &Seq{Prompt: withTail(p, 60), MaxTokens: 1}
	got, _ := steps(t, s, a, b)
	want := []string{
		"6@0:",   // a writes block 0 and half of block 1; b waits for them
		"6@4:",   // a has ended: b takes block 0 and writes the rest itself
		"3@10:s", // b's last chunk
	}
	if !slices.Equal(got, want) {
		t.Fatalf("steps\n got %q\nwant %q", got, want)
	}
	if s.reused != 4 {
		t.Errorf("%d tokens reused; want 4", s.reused)
	}
}

// TestPrefixCommittedAccounting: Committed, kept as the queue changes
// (committed.go), equals a sum over the waiting queue a block at a time,
// after every change: over random prompts built from a few shared prefixes
// of random lengths, as sequences are admitted, run, preempted and end,
// and with a sequence not yet added. The cases reach preemption, and
// chains whose later blocks are held while earlier ones are not (a
// scoring sequence computes its prompt without taking cached blocks).
func TestPrefixCommittedAccounting(t *testing.T) {
	// gapped is 1 if a waiting sequence's chain has a held block after an
	// unheld one.
	gapped := func(s *Scheduler) int {
		for _, q := range s.waiting {
			if len(q.table) > 0 || !s.shares(q) {
				continue
			}
			unheld := false
			for _, k := range s.chain(q, q.tokens, s.reusable(q.tokens)) {
				if !s.bl.held(k) {
					unheld = true
				} else if unheld {
					return 1
				}
			}
		}
		return 0
	}
	for _, c := range []struct {
		scores      bool
		blocks, gen int
		gaps        bool // the case is the one that meets gaps (short generations), not preemption
	}{{false, 40, 40, false}, {true, 40, 40, false}, {true, 60, 6, true}} {
		t.Run(fmt.Sprintf("scores=%v,blocks=%d", c.scores, c.blocks), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			bases := make([][]int32, 4)
			for i := range bases {
				bases[i] = make([]int32, 48)
				for j := range bases[i] {
					bases[i][j] = int32(r.IntN(3)) // few values: chains that meet by chance too
				}
			}
			newSeq := func() *Seq {
				b := bases[r.IntN(len(bases))]
				p := slices.Clone(b[:r.IntN(len(b)+1)])
				for range 1 + r.IntN(12) {
					p = append(p, int32(r.IntN(3)))
				}
				q := &Seq{Prompt: p, MaxTokens: 1 + r.IntN(c.gen)}
				if c.scores && r.IntN(8) == 0 {
					q.Task = Score
				}
				return q
			}
			s := NewScheduler(Config{TokenBudget: 24, MaxSeqs: 6}, c.blocks, 4, 128)
			now, gaps, preempted := t0, 0, 0
			for i := range 2000 {
				// Engine.Add's backpressure, with a sequence now and then
				// past it, as an engine admits into an empty queue.
				if q := newSeq(); s.Len() == 0 || s.committed(q) <= s.Capacity() || r.IntN(8) == 0 {
					if err := s.Add(q, now); err != nil {
						t.Fatal(err)
					}
				}
				extra := newSeq()
				for _, k := range []struct {
					got, want int
				}{{s.committed(extra), committedPerBlock(s, extra)}, {s.Committed(), committedPerBlock(s, nil)}} {
					if k.got != k.want {
						t.Fatalf("round %d: committed %d; per block %d", i, k.got, k.want)
					}
				}
				gaps += gapped(s)
				if s.Len() > 0 && r.IntN(4) > 0 {
					step(t, s, now)
					s.Ended()
				}
				now = now.Add(time.Millisecond)
			}
			preempted = s.preemptions
			t.Logf("%d rounds with a gapped chain waiting; %d preemptions", gaps, preempted)
			switch {
			case c.gaps && gaps == 0:
				t.Error("no gapped chain met: the case no longer reaches what it is for")
			case !c.gaps && preempted == 0:
				t.Error("no preemptions: the cache is too large for the test to reach them")
			}
		})
	}
}
