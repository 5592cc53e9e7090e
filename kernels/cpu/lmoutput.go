package cpu

import (
	"github.com/gearbox-inference/gearbox/kernels"
)

// outputs computes what each sequence asked for. Only the rows that need
// it go through the final norm and the head: a sequence's last row when it
// samples, wants logits, a target's log-probability or its hidden state,
// its other rows when it scores its own tokens (WantLogprobs), and the last
// Seq.LogitRows rows when it wants their logits.
func (st *lmStep) outputs() []kernels.SeqOut {
	c := st.c
	hid := c.Hidden
	// sel lists the rows that need the final norm; logit[r] is the index
	// of row r's logits, or -1.
	var sel, logitRows []int
	logit := make(map[int]int)
	needLogits := func(r int) {
		if _, ok := logit[r]; !ok {
			sel = append(sel, r)
			logit[r] = len(logitRows)
			logitRows = append(logitRows, r)
		}
	}
	for s := range st.seqs {
		want := st.seqs[s].Want
		lo, last := st.first[s], st.first[s+1]-1
		if want&kernels.WantLogprobs != 0 {
			for r := lo; r < last; r++ {
				needLogits(r)
			}
		}
		if want&kernels.WantLogits != 0 {
			for r := last - max(st.seqs[s].LogitRows, 1) + 1; r < last; r++ {
				needLogits(r)
			}
		}
		switch {
		case want&(kernels.WantSample|kernels.WantLogits|kernels.WantTarget) != 0:
			needLogits(last)
		case want&kernels.WantHidden != 0:
			sel = append(sel, last)
		}
	}
	normed := make(map[int][]float32, len(sel))
	for _, r := range sel {
		y := make([]float32, hid)
		rmsNormRow(y, st.x[r*hid:(r+1)*hid], st.w.norm, c.RMSEps)
		normed[r] = y
	}
	var logits []float32 // [len(logitRows), vocab]
	if len(logitRows) > 0 {
		in := make([]float32, len(logitRows)*hid)
		for i, r := range logitRows {
			copy(in[i*hid:], normed[r])
		}
		st.b.roundRows(kernels.LMHeadFormat(st.p), in, hid)
		logits = make([]float32, len(logitRows)*c.Vocab)
		linear(st.b.threads, logits, in, st.w.head, nil, len(logitRows), hid, c.Vocab)
	}
	row := func(r int) []float32 {
		i := logit[r]
		return logits[i*c.Vocab : (i+1)*c.Vocab : (i+1)*c.Vocab]
	}

	outs := make([]kernels.SeqOut, len(st.seqs))
	for s := range st.seqs {
		seq, o := &st.seqs[s], &outs[s]
		lo, last := st.first[s], st.first[s+1]-1
		if seq.Want&kernels.WantHidden != 0 {
			o.Hidden = normed[last]
		}
		if seq.Want&kernels.WantLogits != 0 {
			for r := last - max(seq.LogitRows, 1) + 1; r <= last; r++ {
				o.Logits = append(o.Logits, row(r)...)
			}
		}
		if seq.Want&kernels.WantLogprobs != 0 {
			for r := lo; r < last; r++ {
				o.Logprobs = append(o.Logprobs, logprob(row(r), seq.Tokens[r-lo+1]))
			}
			if seq.Want&kernels.WantTarget != 0 {
				o.Logprobs = append(o.Logprobs, logprob(row(last), seq.Target))
			}
			if o.Logprobs == nil {
				o.Logprobs = []float32{}
			}
		}
		if seq.Want&kernels.WantSample != 0 {
			l := row(last)
			lse := kernels.LogSumExp(l)
			o.Token = kernels.Sample(l, seq.Sampling, seq.Pos+len(seq.Tokens))
			o.Logprob = float32(float64(l[o.Token]) - lse)
			o.Top = kernels.TopLogprobs(l, lse, seq.Sampling.TopLogprobs)
		}
	}
	return outs
}

// logprob is the log-probability of token under logits.
func logprob(logits []float32, token int32) float32 {
	return float32(float64(logits[token]) - kernels.LogSumExp(logits))
}
