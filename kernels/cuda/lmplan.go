//go:build cgo

package cuda

import (
	"encoding/binary"
	"math"

	"github.com/gearbox-inference/gearbox/kernels"
)

// lmPlan is one Step laid out for the device: the arrays the kernels read
// (one row per token fed, in sequence order) and where each sequence's
// outputs come from. It is plain data, built on the caller's goroutine and
// packed into one upload (pack).
type lmPlan struct {
	rows int
	// Per row: the token, its position, its sequence and the split length
	// of its attention (attnSplit of its context).
	tokens, pos, seq, split []int32
	// btOff[s] is where sequence s's block table starts in blocks.
	btOff, blocks []int32
	maxSplits     int // the most splits of any row
	maxCtx        int // the longest context (position + 1) of any row
	// normRows are the rows that go through the final norm, each once (the
	// norm adds the last layer's output to the residual in place): the
	// nLogit rows that need logits first (every sequence's last row that
	// samples, wants logits or a target; then the rows scored
	// teacher-forced; then the other rows of Seq.LogitRows not among
	// those), then the last rows that want only their hidden state.
	normRows []int32
	nLogit   int
	// targets[i] is the token whose log-probability logit row i scores, or
	// -1.
	targets []int32
	// Sampling, per sampled sequence: its logit row, temperature, top-k,
	// top-p, uniform draw SampleUniform(Seed, position of the new token)
	// and number of alternatives.
	sRow, sTopK, sNTop []int32
	sTemp, sTopP       []float32
	sU                 []float64
	outs               []seqPlan
}

// seqPlan says where one sequence's outputs are: indexes into the logit
// rows, normRows and the sampling arrays, -1 where it asked for nothing.
type seqPlan struct {
	want   kernels.Want
	last   int // the logit row of its last row
	hidden int // the index in normRows of its last row (WantHidden)
	lpFrom int // its teacher-forced logit rows: lpFrom ...
	lpN    int // ... lpFrom+lpN−1 (and last, with WantTarget)
	// The logit rows of its rows before the last that return their logits
	// (Seq.LogitRows − 1 of them): rowsFrom ... rowsFrom+rowsN−1.
	rowsFrom, rowsN int
	sample          int // its index in the sampling arrays
	nTop            int // alternatives it gets: min(TopLogprobs, vocab)
}

// prefillFrom says whether the plan's rows are decode rows (sequences fed
// one row) followed by prefill chunks (sequences fed several), at least
// one of those, and where the chunks begin.
func (p *lmPlan) prefillFrom() (from int, ok bool) {
	n := make([]int, len(p.btOff))
	for _, s := range p.seq {
		n[s]++
	}
	from = p.rows
	for i := p.rows - 1; i >= 0 && n[p.seq[i]] > 1; i-- {
		from = i
	}
	if from == p.rows {
		return 0, false
	}
	for i := range from {
		if n[p.seq[i]] > 1 {
			return 0, false
		}
	}
	return from, true
}

// attnSplit is the split length of a row's attention over a context of n
// positions (abi.h): a multiple of the KV block size, at least
// attnMinSplit, and long enough that no row has more than attnMaxSplits
// splits. It depends on n alone, so a row's attention is summed the same
// way in every batch, in prefill and in decode.
func attnSplit(n int) int {
	nb := (n + kvBlock - 1) / kvBlock
	return kvBlock * max(attnMinSplitLen/kvBlock, (nb+attnMaxSplits-1)/attnMaxSplits)
}

// attnMinSplitLen is attnMinSplit, a variable for TestAttnBench to try
// others.
var attnMinSplitLen = attnMinSplit

// newLMPlan lays out seqs (checked by kernels.CheckStep) for a model of
// vocab tokens.
func newLMPlan(seqs []kernels.Seq, vocab int) *lmPlan {
	rows, nb := 0, 0
	for s := range seqs {
		rows, nb = rows+len(seqs[s].Tokens), nb+len(seqs[s].Blocks)
	}
	p := &lmPlan{rows: rows, btOff: make([]int32, len(seqs)), blocks: make([]int32, 0, nb), outs: make([]seqPlan, len(seqs))}
	p.tokens, p.pos, p.seq, p.split = make([]int32, 0, rows), make([]int32, 0, rows), make([]int32, 0, rows), make([]int32, 0, rows)
	for s := range seqs {
		q := &seqs[s]
		p.btOff[s] = int32(len(p.blocks))
		p.blocks = append(p.blocks, q.Blocks...)
		p.tokens = append(p.tokens, q.Tokens...)
		for i := range q.Tokens {
			n := q.Pos + i + 1
			p.pos = append(p.pos, int32(n-1))
			p.seq = append(p.seq, int32(s))
			sp := attnSplit(n)
			p.split = append(p.split, int32(sp))
			p.maxSplits = max(p.maxSplits, (n+sp-1)/sp)
			p.maxCtx = max(p.maxCtx, n)
		}
	}
	first := make([]int, len(seqs)+1) // first row of each sequence
	for s := range seqs {
		first[s+1] = first[s] + len(seqs[s].Tokens)
	}
	const lastWants = kernels.WantSample | kernels.WantLogits | kernels.WantTarget
	n := len(seqs) // the arrays below hold about one entry a sequence (exactly, in a decode step)
	p.normRows, p.targets = make([]int32, 0, n), make([]int32, 0, n)
	p.sRow, p.sTopK, p.sNTop = make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
	p.sTemp, p.sTopP, p.sU = make([]float32, 0, n), make([]float32, 0, n), make([]float64, 0, n)
	for s := range seqs {
		q, o := &seqs[s], &p.outs[s]
		*o = seqPlan{want: q.Want, last: -1, hidden: -1, sample: -1}
		if q.Want&lastWants == 0 {
			continue
		}
		o.last = len(p.normRows)
		p.normRows = append(p.normRows, int32(first[s+1]-1))
		tgt := int32(-1)
		if q.Want&kernels.WantTarget != 0 {
			tgt = q.Target
		}
		p.targets = append(p.targets, tgt)
		if q.Want&kernels.WantHidden != 0 {
			o.hidden = o.last // the last row is normed for the logits anyway
		}
		if q.Want&kernels.WantSample != 0 {
			sp := &q.Sampling
			o.sample = len(p.sRow)
			o.nTop = min(sp.TopLogprobs, vocab)
			p.sRow = append(p.sRow, int32(o.last))
			p.sTemp = append(p.sTemp, sp.Temperature)
			p.sTopK = append(p.sTopK, int32(sp.TopK))
			p.sTopP = append(p.sTopP, sp.TopP)
			p.sU = append(p.sU, kernels.SampleUniform(sp.Seed, q.Pos+len(q.Tokens)))
			p.sNTop = append(p.sNTop, int32(o.nTop))
		}
	}
	for s := range seqs {
		q, o := &seqs[s], &p.outs[s]
		if q.Want&kernels.WantLogprobs == 0 {
			continue
		}
		o.lpFrom, o.lpN = len(p.normRows), len(q.Tokens)-1
		for i := range o.lpN {
			p.normRows = append(p.normRows, int32(first[s]+i))
			p.targets = append(p.targets, q.Tokens[i+1])
		}
	}
	for s := range seqs {
		q, o := &seqs[s], &p.outs[s]
		if q.Want&kernels.WantLogits == 0 || q.LogitRows <= 1 {
			continue
		}
		start := first[s+1] - q.LogitRows
		o.rowsN = q.LogitRows - 1
		if q.Want&kernels.WantLogprobs != 0 {
			// Those rows are scored teacher-forced already, contiguous
			// from lpFrom: their logits are there. A row must not be in
			// normRows twice: the final norm adds the last layer's output
			// to the residual stream in place, once per normRows entry.
			o.rowsFrom = o.lpFrom + start - first[s]
			continue
		}
		o.rowsFrom = len(p.normRows)
		for r := start; r < first[s+1]-1; r++ {
			p.normRows = append(p.normRows, int32(r))
			p.targets = append(p.targets, -1)
		}
	}
	p.nLogit = len(p.normRows)
	for s := range seqs {
		if q, o := &seqs[s], &p.outs[s]; q.Want&kernels.WantHidden != 0 && o.hidden < 0 {
			o.hidden = len(p.normRows)
			p.normRows = append(p.normRows, int32(first[s+1]-1))
		}
	}
	return p
}

// planLayout is where each array of a packed plan starts, in bytes from
// the start of the upload; every array starts 16-byte aligned. The block
// tables come last, padded to blocksCap entries, so that the layout of a
// decode step's plan stays the same while its sequences grow (CUDA graphs
// hold these offsets).
type planLayout struct {
	tokens, pos, seq, split, btOff, blocks, normRows, targets int
	sRow, sTemp, sTopK, sTopP, sU, sNTop                      int
	size                                                      int
	blocksCap                                                 int
}

// blocksCap is the block-table capacity a plan is packed with: the number
// of block ids rounded up to a power of two, at least 64.
func (p *lmPlan) blocksCap() int {
	n := 64
	for n < len(p.blocks) {
		n *= 2
	}
	return n
}

// layout is where each of the plan's arrays starts in its upload.
func (p *lmPlan) layout() planLayout {
	var l planLayout
	n := 0
	at := func(elems, size int) int {
		off := (n + 15) &^ 15
		n = off + elems*size
		return off
	}
	l.tokens, l.pos, l.seq, l.split = at(len(p.tokens), 4), at(len(p.pos), 4), at(len(p.seq), 4), at(len(p.split), 4)
	l.btOff, l.normRows, l.targets = at(len(p.btOff), 4), at(len(p.normRows), 4), at(len(p.targets), 4)
	l.sRow, l.sTemp, l.sTopK, l.sTopP = at(len(p.sRow), 4), at(len(p.sTemp), 4), at(len(p.sTopK), 4), at(len(p.sTopP), 4)
	l.sU, l.sNTop = at(len(p.sU), 8), at(len(p.sNTop), 4)
	l.blocksCap = p.blocksCap()
	l.blocks = at(l.blocksCap, 4)
	l.size = at(0, 0)
	return l
}

// packInto writes the plan's arrays, little-endian, into dst (at least
// l.size bytes) at layout l's offsets, zeros between them.
func (p *lmPlan) packInto(dst []byte, l planLayout) {
	dst = dst[:l.size]
	end := 0
	i32s := func(off int, v []int32) {
		clear(dst[end:off])
		for i, x := range v {
			binary.LittleEndian.PutUint32(dst[off+4*i:], uint32(x))
		}
		end = off + 4*len(v)
	}
	f32s := func(off int, v []float32) {
		clear(dst[end:off])
		for i, x := range v {
			binary.LittleEndian.PutUint32(dst[off+4*i:], math.Float32bits(x))
		}
		end = off + 4*len(v)
	}
	i32s(l.tokens, p.tokens)
	i32s(l.pos, p.pos)
	i32s(l.seq, p.seq)
	i32s(l.split, p.split)
	i32s(l.btOff, p.btOff)
	i32s(l.normRows, p.normRows)
	i32s(l.targets, p.targets)
	i32s(l.sRow, p.sRow)
	f32s(l.sTemp, p.sTemp)
	i32s(l.sTopK, p.sTopK)
	f32s(l.sTopP, p.sTopP)
	clear(dst[end:l.sU])
	for i, u := range p.sU {
		binary.LittleEndian.PutUint64(dst[l.sU+8*i:], math.Float64bits(u))
	}
	end = l.sU + 8*len(p.sU)
	i32s(l.sNTop, p.sNTop)
	i32s(l.blocks, p.blocks)
	clear(dst[end:])
}

// pack returns the plan's arrays as one buffer (packInto), and where each
// starts.
func (p *lmPlan) pack() ([]byte, planLayout) {
	l := p.layout()
	b := make([]byte, l.size)
	p.packInto(b, l)
	return b, l
}
