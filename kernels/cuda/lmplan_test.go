//go:build cgo

package cuda

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"unsafe"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
)

// TestAttnSplit checks the split lengths of attention against abi.h's
// rule: a multiple of the block, at least GBX_ATTN_MIN_SPLIT, at most
// GBX_ATTN_MAX_SPLITS splits covering the context exactly, and a function
// of the context length that never shrinks as it grows.
func TestAttnSplit(t *testing.T) {
	prev := 0
	for n := 1; n <= lm.MaxPositions; n += 1 + n/97 {
		s := attnSplit(n)
		ns := (n + s - 1) / s
		switch {
		case s%kvBlock != 0 || s < attnMinSplit:
			t.Fatalf("attnSplit(%d) = %d: want a multiple of %d, at least %d", n, s, kvBlock, attnMinSplit)
		case ns > attnMaxSplits || (ns-1)*s >= n || ns*s < n:
			t.Fatalf("attnSplit(%d) = %d: %d splits; want 1 to %d covering the context exactly", n, s, ns, attnMaxSplits)
		case s < prev:
			t.Fatalf("attnSplit(%d) = %d, shorter than for a shorter context (%d)", n, s, prev)
		}
		prev = s
	}
	for _, c := range []struct{ n, want int }{{1, 256}, {256, 256}, {257, 256}, {16384, 256}, {16385, 272}, {32768, 512}} {
		if got := attnSplit(c.n); got != c.want {
			t.Errorf("attnSplit(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// planBatch is a step of five sequences wanting every combination of
// outputs: A a prompt chunk scored and sampled, with its hidden state; B a
// decode step wanting logits; C a chunk scored without a target; D a chunk
// wanting its hidden state alone; E nothing.
func planBatch() []kernels.Seq {
	return []kernels.Seq{
		{Tokens: []int32{5, 6, 7}, Pos: 0, Blocks: []int32{9}, Target: 8,
			Want:     kernels.WantSample | kernels.WantHidden | kernels.WantLogprobs | kernels.WantTarget,
			Sampling: kernels.Sampling{Temperature: 0.7, TopK: 40, TopP: 0.9, Seed: 77, TopLogprobs: 3}},
		{Tokens: []int32{11}, Pos: 17, Blocks: []int32{4, 2}, Want: kernels.WantLogits},
		{Tokens: []int32{20, 21, 22, 23}, Pos: 300, Blocks: make([]int32, 20), Want: kernels.WantLogprobs},
		{Tokens: []int32{30, 31}, Pos: 3, Blocks: []int32{1}, Want: kernels.WantHidden},
		{Tokens: []int32{40}, Pos: 0, Blocks: []int32{3}},
	}
}

func TestLMPlan(t *testing.T) {
	seqs := planBatch()
	p := newLMPlan(seqs, 256)
	eq := func(name string, got, want []int32) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if p.rows != 11 {
		t.Fatalf("rows = %d, want 11", p.rows)
	}
	eq("tokens", p.tokens, []int32{5, 6, 7, 11, 20, 21, 22, 23, 30, 31, 40})
	eq("pos", p.pos, []int32{0, 1, 2, 17, 300, 301, 302, 303, 3, 4, 0})
	eq("seq", p.seq, []int32{0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 4})
	eq("btOff", p.btOff, []int32{0, 1, 3, 23, 24})
	if len(p.blocks) != 25 || p.blocks[1] != 4 || p.blocks[2] != 2 || p.blocks[24] != 3 {
		t.Errorf("blocks = %v: want the tables concatenated", p.blocks)
	}
	for r, n := range p.pos {
		if p.split[r] != int32(attnSplit(int(n)+1)) {
			t.Errorf("split[%d] = %d, want attnSplit(%d)", r, p.split[r], n+1)
		}
	}
	if p.maxSplits != 2 || p.maxCtx != 304 { // 304 positions in splits of 256
		t.Errorf("maxSplits %d, maxCtx %d; want 2, 304", p.maxSplits, p.maxCtx)
	}
	// Logit rows: A's and B's last rows, then A's and C's scored rows;
	// then D's last row for its hidden state.
	eq("normRows", p.normRows, []int32{2, 3, 0, 1, 4, 5, 6, 9})
	if p.nLogit != 7 {
		t.Errorf("nLogit = %d, want 7", p.nLogit)
	}
	eq("targets", p.targets, []int32{8, -1, 6, 7, 21, 22, 23})
	eq("sRow", p.sRow, []int32{0})
	eq("sTopK", p.sTopK, []int32{40})
	eq("sNTop", p.sNTop, []int32{3})
	if p.sTemp[0] != 0.7 || p.sTopP[0] != 0.9 || p.sU[0] != kernels.SampleUniform(77, 3) {
		t.Errorf("sampling %v %v %v; want 0.7, 0.9, SampleUniform(77, 3)", p.sTemp, p.sTopP, p.sU)
	}
	want := []seqPlan{
		{want: seqs[0].Want, last: 0, hidden: 0, lpFrom: 2, lpN: 2, sample: 0, nTop: 3},
		{want: seqs[1].Want, last: 1, hidden: -1, sample: -1},
		{want: seqs[2].Want, last: -1, hidden: -1, lpFrom: 4, lpN: 3, sample: -1},
		{want: seqs[3].Want, last: -1, hidden: 7, sample: -1},
		{want: 0, last: -1, hidden: -1, sample: -1},
	}
	for i := range want {
		if p.outs[i] != want[i] {
			t.Errorf("outs[%d] = %+v, want %+v", i, p.outs[i], want[i])
		}
	}
}

func TestLMPlanPack(t *testing.T) {
	p := newLMPlan(planBatch(), 256)
	b, l := p.pack()
	if len(b) != l.size {
		t.Fatalf("packed %d bytes, layout says %d", len(b), l.size)
	}
	if l.blocksCap != 64 || l.blocks+4*l.blocksCap > l.size || l.blocks < l.sNTop {
		t.Errorf("block tables at %d, capacity %d, of %d bytes: want them last, 64 entries", l.blocks, l.blocksCap, l.size)
	}
	// Growing the tables moves nothing else.
	q := newLMPlan(planBatch(), 256)
	q.blocks = append(q.blocks, make([]int32, 30)...)
	if _, l2 := q.pack(); l2.blocks != l.blocks || l2.sNTop != l.sNTop || l2.size != l.size {
		t.Errorf("30 more block ids moved the layout: %+v, was %+v", l2, l)
	}
	i32s := func(off, n int) []int32 {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(b[off+4*i:]))
		}
		return v
	}
	for _, a := range []struct {
		name string
		off  int
		want []int32
	}{
		{"tokens", l.tokens, p.tokens}, {"pos", l.pos, p.pos}, {"seq", l.seq, p.seq}, {"split", l.split, p.split},
		{"btOff", l.btOff, p.btOff}, {"blocks", l.blocks, p.blocks}, {"normRows", l.normRows, p.normRows},
		{"targets", l.targets, p.targets}, {"sRow", l.sRow, p.sRow}, {"sTopK", l.sTopK, p.sTopK}, {"sNTop", l.sNTop, p.sNTop},
	} {
		if a.off%16 != 0 {
			t.Errorf("%s at byte %d: want 16-byte aligned", a.name, a.off)
		}
		if got := i32s(a.off, len(a.want)); !slices.Equal(got, a.want) {
			t.Errorf("%s packed as %v, want %v", a.name, got, a.want)
		}
	}
	if math.Float32frombits(binary.LittleEndian.Uint32(b[l.sTemp:])) != p.sTemp[0] ||
		math.Float32frombits(binary.LittleEndian.Uint32(b[l.sTopP:])) != p.sTopP[0] ||
		math.Float64frombits(binary.LittleEndian.Uint64(b[l.sU:])) != p.sU[0] || l.sU%16 != 0 {
		t.Error("sampling floats packed wrong")
	}
}

// TestLMOutputsParse fills a host buffer as the kernels would and checks
// what each sequence gets back.
func TestLMOutputsParse(t *testing.T) {
	seqs := planBatch()
	c := &lm.Config{Hidden: 4, Vocab: 256}
	p := newLMPlan(seqs, c.Vocab)
	r := &lmRun{pl: p, outCap: max(len(p.sRow), p.nLogit)}
	tokOff, tokLpOff, topIDsOff, topLpOff, lpOff, size := outLayout(r.outCap)
	if !(tokOff < tokLpOff && tokLpOff+4*r.outCap <= topIDsOff && topIDsOff+4*maxTop*r.outCap <= topLpOff &&
		topLpOff+4*maxTop*r.outCap <= lpOff && lpOff+4*r.outCap <= size) {
		t.Fatalf("outLayout(%d) overlaps: %d %d %d %d %d %d", r.outCap, tokOff, tokLpOff, topIDsOff, topLpOff, lpOff, size)
	}
	// A's hidden state after the outputs, B's logits after it.
	r.hidden = []int{size, -1, -1, size + 4*c.Hidden + 4*c.Vocab, -1}
	r.logitAt = []int{-1, size + 4*c.Hidden, -1, -1, -1}
	buf := make([]byte, size+8*c.Hidden+4*c.Vocab)
	put := func(off int, v float32) { binary.LittleEndian.PutUint32(buf[off:], math.Float32bits(v)) }
	binary.LittleEndian.PutUint32(buf[tokOff:], 123)
	put(tokLpOff, -1.5)
	for j := range 3 {
		binary.LittleEndian.PutUint32(buf[topIDsOff+4*j:], uint32(200+j))
		put(topLpOff+4*j, -float32(j))
	}
	for i := range p.nLogit {
		put(lpOff+4*i, -10-float32(i))
	}
	for i := range c.Hidden {
		put(size+4*i, float32(i))
		put(size+4*c.Hidden+4*c.Vocab+4*i, 100+float32(i))
	}
	for i := range c.Vocab {
		put(size+4*c.Hidden+4*i, 1000+float32(i))
	}
	r.host = pinned{p: unsafe.Pointer(&buf[0]), n: len(buf)}
	outs := r.outputs(c)
	a := outs[0]
	if a.Token != 123 || a.Logprob != -1.5 || len(a.Top) != 3 || a.Top[2] != (kernels.TokenLogprob{Token: 202, Logprob: -2}) {
		t.Errorf("A's sample: %d %v %v", a.Token, a.Logprob, a.Top)
	}
	if !slices.Equal(a.Logprobs, []float32{-12, -13, -10}) { // rows 0 and 1 scored, then the target at the last row
		t.Errorf("A's log-probabilities %v, want [-12 -13 -10]", a.Logprobs)
	}
	if !slices.Equal(a.Hidden, []float32{0, 1, 2, 3}) {
		t.Errorf("A's hidden state %v", a.Hidden)
	}
	if b := outs[1]; len(b.Logits) != c.Vocab || b.Logits[5] != 1005 || b.Logprobs != nil || b.Top != nil {
		t.Errorf("B: %d logits (logits[5] = %v), logprobs %v", len(b.Logits), b.Logits[5], b.Logprobs)
	}
	if cl := outs[2].Logprobs; !slices.Equal(cl, []float32{-14, -15, -16}) {
		t.Errorf("C's log-probabilities %v, want [-14 -15 -16]", cl)
	}
	if d := outs[3]; !slices.Equal(d.Hidden, []float32{100, 101, 102, 103}) || d.Logits != nil {
		t.Errorf("D: hidden %v, logits %v", d.Hidden, d.Logits)
	}
	if e := outs[4]; e.Token != 0 || e.Logits != nil || e.Logprobs != nil || e.Hidden != nil || e.Top != nil {
		t.Errorf("E asked for nothing and got %+v", e)
	}
}

// TestLMPlanLogitRows: the rows of Seq.LogitRows go through the final norm
// once each — rows scored teacher-forced already are not added again (the
// norm adds the last layer's output to the residual in place, so a row
// normed twice got it twice) — and the plan says where their logits are.
func TestLMPlanLogitRows(t *testing.T) {
	toks := []int32{1, 2, 3, 4, 5, 6}
	for _, c := range []struct {
		name string
		want kernels.Want
		from int // rowsFrom
	}{
		{"with logprobs", kernels.WantLogits | kernels.WantLogprobs, 1 + 2}, // after the last row, lp rows 0..4: rows 2..4 at 3..5
		{"alone", kernels.WantLogits, 1},
	} {
		pl := newLMPlan([]kernels.Seq{{Tokens: toks, Want: c.want, LogitRows: 4}}, 100)
		seen := map[int32]bool{}
		for _, r := range pl.normRows {
			if seen[r] {
				t.Errorf("%s: row %d is in normRows twice: %v", c.name, r, pl.normRows)
			}
			seen[r] = true
		}
		o := pl.outs[0]
		if o.rowsFrom != c.from || o.rowsN != 3 {
			t.Fatalf("%s: rows from %d, %d of them; want from %d, 3", c.name, o.rowsFrom, o.rowsN, c.from)
		}
		for i := range o.rowsN {
			if got, want := pl.normRows[o.rowsFrom+i], int32(len(toks)-4+i); got != want {
				t.Errorf("%s: logit row %d is token row %d; want %d", c.name, i, got, want)
			}
		}
	}
}

// TestLMPlanPrefillFrom: a step's prefill chunks go to gbx_attn_prefill
// when they follow every decode row (the engine's order): prefillFrom
// gives where they begin, and refuses a step without a chunk or with a
// decode row after one.
func TestLMPlanPrefillFrom(t *testing.T) {
	dec := func(pos int) kernels.Seq { return kernels.Seq{Tokens: []int32{1}, Pos: pos, Blocks: []int32{0, 1}} }
	chunk := func(n int) kernels.Seq { return kernels.Seq{Tokens: make([]int32, n), Blocks: []int32{2, 3}} }
	for _, tc := range []struct {
		name string
		seqs []kernels.Seq
		from int
		ok   bool
	}{
		{"decodes then chunks", []kernels.Seq{dec(3), dec(9), chunk(5), chunk(2)}, 2, true},
		{"chunks alone", []kernels.Seq{chunk(4), chunk(7)}, 0, true},
		{"decodes alone", []kernels.Seq{dec(3), dec(4)}, 0, false},
		{"a decode after a chunk", []kernels.Seq{chunk(4), dec(3)}, 0, false},
		{"a decode between chunks", []kernels.Seq{chunk(4), dec(3), chunk(2)}, 0, false},
		{"a one-token prompt (one row: a decode row's kernel)", []kernels.Seq{chunk(1), chunk(3)}, 1, true},
	} {
		from, ok := newLMPlan(tc.seqs, 256).prefillFrom()
		if from != tc.from || ok != tc.ok {
			t.Errorf("%s: prefillFrom %d, %v; want %d, %v", tc.name, from, ok, tc.from, tc.ok)
		}
	}
}
