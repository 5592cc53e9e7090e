package tokenizer

import (
	"strings"
	"sync"
	"sync/atomic"
)

// bpe is the byte-level BPE model: the vocabulary and the merges with their
// ranks (lower merges first).
type bpe struct {
	vocab map[string]int
	// byteID is the id of each byte's character, -1 where the vocabulary
	// lacks it (such bytes are dropped, or become unk).
	byteID [256]int32
	// merges maps a pair of ids (a<<32 | b) to the merge's rank and the
	// merged token's id (rank<<32 | id).
	merges map[uint64]uint64
	// ignoreMerges: a word that is itself in the vocabulary is that one
	// token, whatever the merges would make of it (Llama 3).
	ignoreMerges bool
	unk          int32 // -1: none
	fuseUnk      bool

	cache wordCache
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// appendWord appends the ids of one pre-tokenized word (raw bytes, not yet
// in the byte-level alphabet).
func (m *bpe) appendWord(dst []int, word string) []int {
	if ids, ok := m.cache.get(word); ok {
		for _, id := range ids {
			dst = append(dst, int(id))
		}
		return dst
	}
	ids := m.word(word)
	m.cache.put(word, ids)
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	return dst
}

// symbol is one token of a word being merged, in a linked list over the
// word's initial symbols; a merged-away symbol has dead set.
type symbol struct {
	id         int32
	prev, next int32
	dead       bool
}

// merge is a candidate merge of the symbol at pos with its next.
type merge struct {
	rank uint32
	pos  int32
	id   int32
}

// scratch holds the buffers of one word's merge.
type scratch struct {
	syms []symbol
	heap []merge
	buf  []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// word returns the ids of one word, as the tokenizers library's BPE model
// computes them: each byte becomes its character's token, then the pair of
// lowest rank (leftmost on ties) is merged until no pair has a merge.
func (m *bpe) word(word string) []int32 {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	if m.ignoreMerges {
		sc.buf = appendByteLevel(sc.buf[:0], word)
		if id, ok := m.vocab[string(sc.buf)]; ok {
			return []int32{int32(id)}
		}
	}
	syms := sc.syms[:0]
	unk, unkPending := int32(-1), false
	add := func(id int32) {
		n := int32(len(syms))
		if n > 0 {
			syms[n-1].next = n
		}
		syms = append(syms, symbol{id: id, prev: n - 1, next: -1})
	}
	for i := 0; i < len(word); i++ {
		id := m.byteID[word[i]]
		switch {
		case id >= 0:
			if unkPending {
				add(unk)
				unkPending = false
			}
			add(id)
		case m.unk >= 0:
			if unkPending && !m.fuseUnk {
				add(unk)
			}
			unk, unkPending = m.unk, true
		}
	}
	if unkPending {
		add(unk)
	}
	h := sc.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if v, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h = heapPush(h, merge{rank: uint32(v >> 32), pos: int32(i), id: int32(uint32(v))})
		}
	}
	for len(h) > 0 {
		var top merge
		top, h = heapPop(h)
		s := &syms[top.pos]
		if s.dead || s.next < 0 {
			continue
		}
		right := syms[s.next]
		// The pair may have changed since it was queued: merge only if it
		// still makes the same token.
		if v, ok := m.merges[pairKey(s.id, right.id)]; !ok || int32(uint32(v)) != top.id {
			continue
		}
		s.id = top.id
		syms[s.next].dead = true
		s.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if s.prev >= 0 {
			if v, ok := m.merges[pairKey(syms[s.prev].id, s.id)]; ok {
				h = heapPush(h, merge{rank: uint32(v >> 32), pos: s.prev, id: int32(uint32(v))})
			}
		}
		if s.next >= 0 {
			if v, ok := m.merges[pairKey(s.id, syms[s.next].id)]; ok {
				h = heapPush(h, merge{rank: uint32(v >> 32), pos: top.pos, id: int32(uint32(v))})
			}
		}
	}
	var ids []int32
	for i := range syms {
		if !syms[i].dead {
			ids = append(ids, syms[i].id)
		}
	}
	sc.syms, sc.heap = syms, h
	return ids
}

// less orders merges by rank, then position.
func (a merge) less(b merge) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// heapPush adds m to the binary min-heap h.
func heapPush(h []merge, m merge) []merge {
	h = append(h, m)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

// heapPop removes and returns the least merge of h.
func heapPop(h []merge) (merge, []merge) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l, least := 2*i+1, i
		if l < len(h) && h[l].less(h[least]) {
			least = l
		}
		if r := l + 1; r < len(h) && h[r].less(h[least]) {
			least = r
		}
		if least == i {
			break
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
	return top, h
}

// Bounds of the word cache: words longer than maxCachedWord bytes are not
// cached; the cache is emptied when it reaches cacheEntries words.
const (
	maxCachedWord = 256
	cacheEntries  = 1 << 16
)

// wordCache remembers the ids of recent words; safe for concurrent use.
// Reads take no lock (sync.Map suits keys written once and read often).
type wordCache struct {
	words sync.Map // string -> []int32
	n     atomic.Int64
}

func (c *wordCache) get(word string) ([]int32, bool) {
	ids, ok := c.words.Load(word)
	if !ok {
		return nil, false
	}
	return ids.([]int32), true
}

func (c *wordCache) put(word string, ids []int32) {
	if len(word) > maxCachedWord {
		return
	}
	if c.n.Add(1) > cacheEntries {
		c.words.Clear()
		c.n.Store(1)
	}
	// Clone: word is a slice of the caller's text, which the cache must
	// not keep alive.
	c.words.Store(strings.Clone(word), ids)
}
