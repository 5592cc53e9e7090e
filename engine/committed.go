package engine

// Committed's accounting, kept as the queue changes rather than summed
// over the waiting queue at each call: Engine.Add calls it for every
// sequence it admits and every step's freed() once, under the engine's
// lock, and at full load the queue is hundreds to tens of thousands deep.
//
// Committed is the blocks held plus what the waiting sequences still
// need. A waiting sequence with blocks (a prompt part-way through its
// chunks) needs the rest of its prompt's and one more; one without, its
// prompt's and one more — less, when it shares prefixes, each block of its
// prompt's chain of keys that some sequence holds or that an earlier
// waiting sequence's chain has. Over the sharing ones that sum is
//
//	Σ (blocks for the prompt and one more − chain length)
//	  + |{keys in some waiting chain whose block no sequence holds}|
//
// (a key in c chains is taken off c times if its block is held, else
// c − 1 times), whatever the queue's order. So the scheduler keeps the
// first sum with the other sequences' needs (base), every chain key with
// the number of chains that have it (cnt), and how many of those keys are
// unheld (unheld); blocks tells it when a key's block becomes held or
// stops being held (blocks.onHeld). A sequence is counted as it joins the
// queue and uncounted as it leaves; one that Plan's admission may give
// blocks is uncounted first and counted again, as it then is, when the
// admission loop is done (dirty, recount).

// acct is what a waiting sequence adds to the accounting.
type acct struct {
	on   bool
	base int
	keys []blockKey // its chain's keys in cnt
}

// accounting is the Scheduler's running sums.
type accounting struct {
	cnt    map[blockKey]int32
	unheld int
	base   int
	dirty  []*Seq // uncounted by Plan's admission loop, to count again
}

// held says whether a sequence holds the block entered under k.
func (b *blocks) held(k blockKey) bool {
	x, ok := b.table[k]
	return ok && b.ref[x] > 0
}

// count adds the waiting sequence q to the accounting.
func (s *Scheduler) count(q *Seq) {
	a := &s.acc
	if a.cnt == nil {
		a.cnt = map[blockKey]int32{}
	}
	q.acct = acct{on: true}
	n := s.bl.forTokens(len(q.tokens) + 1)
	switch {
	case len(q.table) > 0:
		q.acct.base = max(n-len(q.table), 0)
	case !s.shares(q):
		q.acct.base = n
	default:
		keys := s.chain(q, q.tokens, s.reusable(q.tokens))
		q.acct.base, q.acct.keys = n-len(keys), keys
		for _, k := range keys {
			if a.cnt[k] == 0 && !s.bl.held(k) {
				a.unheld++
			}
			a.cnt[k]++
		}
	}
	a.base += q.acct.base
}

// uncount takes q out of the accounting, if it is in.
func (s *Scheduler) uncount(q *Seq) {
	if !q.acct.on {
		return
	}
	a := &s.acc
	a.base -= q.acct.base
	for _, k := range q.acct.keys {
		if a.cnt[k]--; a.cnt[k] == 0 {
			delete(a.cnt, k)
			if !s.bl.held(k) {
				a.unheld--
			}
		}
	}
	q.acct = acct{}
}

// onHeld is told by blocks that the block entered under k became held, or
// stopped being held.
func (s *Scheduler) onHeld(k blockKey, held bool) {
	if s.acc.cnt[k] == 0 {
		return
	}
	if held {
		s.acc.unheld--
	} else {
		s.acc.unheld++
	}
}

// recount counts again the dirty sequences still waiting (Plan, at the
// end of its admission loop; committed, in case).
func (s *Scheduler) recount() {
	for _, q := range s.acc.dirty {
		if q.waiting && !q.acct.on {
			s.count(q)
		}
	}
	s.acc.dirty = s.acc.dirty[:0]
}

// committed is Committed with extra, a sequence not yet added, waiting
// too.
func (s *Scheduler) committed(extra *Seq) int {
	s.recount()
	n := s.bl.Held() + s.acc.base + s.acc.unheld
	if extra == nil {
		return n
	}
	need := s.bl.forTokens(len(extra.Prompt) + 1)
	if s.shares(extra) {
		for _, k := range s.chain(extra, extra.Prompt, s.reusable(extra.Prompt)) {
			if s.acc.cnt[k] > 0 || s.bl.held(k) {
				need--
			}
		}
	}
	return n + need
}
