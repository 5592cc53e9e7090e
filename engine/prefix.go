package engine

import (
	"crypto/sha256"
	"encoding/binary"
)

// blockKey names the contents of a full block of a sequence: the SHA-256
// of the previous block's key and this block's tokens, so that equal keys
// mean equal tokens at every position up to the block's end (an engine
// serves one model version at one precision: nothing else changes its
// K/V).
type blockKey [sha256.Size]byte

// chain extends q.keys to the first n full blocks of toks (q's tokens, or
// its prompt before Add) and returns them.
func (s *Scheduler) chain(q *Seq, toks []int32, n int) []blockKey {
	var buf []byte
	for i := len(q.keys); i < n; i++ {
		if buf == nil {
			buf = make([]byte, 0, sha256.Size+4*s.bl.size)
		}
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, q.keys[i-1][:]...)
		}
		for _, t := range toks[i*s.bl.size : (i+1)*s.bl.size] {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(t))
		}
		q.keys = append(q.keys, sha256.Sum256(buf))
	}
	return q.keys[:n]
}

// shares says whether q takes part in prefix sharing: it reuses blocks
// at admission unless it scores (it needs every prompt row's output).
func (s *Scheduler) shares(q *Seq) bool { return !s.cfg.NoPrefixCache && q.Task != Score }

// reusable is how many leading blocks of q's tokens it can take from the
// cache at admission: full blocks, leaving at least one token to feed.
func (s *Scheduler) reusable(toks []int32) int { return (len(toks) - 1) / s.bl.size }

// reuse gives q, about to start prefilling with nothing in the cache, the
// ready blocks that hold its leading tokens, so that its prefill starts
// after them. It returns false, taking nothing, when the walk meets a
// pending block: another sequence is computing that prefix now, and q
// waits for it rather than compute it twice.
func (s *Scheduler) reuse(q *Seq) bool {
	if !s.shares(q) || q.fed > 0 || len(q.table) > 0 {
		return true
	}
	keys := s.chain(q, q.tokens, s.reusable(q.tokens))
	n := 0
	for _, k := range keys {
		_, isReady, ok := s.bl.lookup(k)
		if !ok {
			break
		}
		if !isReady {
			return false
		}
		n++
	}
	for _, k := range keys[:n] {
		x, _, _ := s.bl.lookup(k)
		s.bl.share(x)
		q.table = append(q.table, x)
	}
	q.fed, q.sealed = n*s.bl.size, n
	s.reused += q.fed
	return true
}

// enter enters q's blocks that this step's prefill chunk writes, and whose
// tokens are all known, as pending: a sequence arriving meanwhile with the
// same prefix waits for them.
func (s *Scheduler) enter(q *Seq) {
	if s.cfg.NoPrefixCache {
		return
	}
	full := min(len(q.table), len(q.tokens)/s.bl.size)
	keys := s.chain(q, q.tokens, full)
	for i := q.sealed; i < full; i++ {
		s.bl.enter(q.table[i], keys[i])
	}
}

// seal marks q's blocks that are now fully written ready for sharing.
func (s *Scheduler) seal(q *Seq) {
	if s.cfg.NoPrefixCache {
		return
	}
	full := q.fed / s.bl.size
	keys := s.chain(q, q.tokens, full)
	for i := q.sealed; i < full; i++ {
		s.bl.seal(q.table[i], keys[i])
	}
	q.sealed = max(q.sealed, full)
}
