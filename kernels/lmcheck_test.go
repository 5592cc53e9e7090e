package kernels_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
)

// TestCheckStepBlocks checks the rule that no block is written by one
// sequence and written or read by another, over a cache of 300 blocks
// (block ids past the first 64, the partial last block a sequence reads
// and writes itself).
func TestCheckStepBlocks(t *testing.T) {
	m := &lm.Model{Name: "t", Config: lm.Config{Vocab: 100, MaxPositions: 4096}}
	const bs = kernels.KVBlockSize
	// seq decodes at position pos over the blocks from first on.
	seq := func(pos int, first int32) kernels.Seq {
		bl := make([]int32, pos/bs+1)
		for i := range bl {
			bl[i] = first + int32(i)
		}
		return kernels.Seq{Tokens: []int32{1}, Pos: pos, Blocks: bl}
	}
	for _, tc := range []struct {
		name string
		seqs []kernels.Seq
		msg  string // "": valid
	}{
		{"apart", []kernels.Seq{seq(5*bs+3, 0), seq(7*bs, 100), seq(bs-1, 299)}, ""},
		{"written twice", []kernels.Seq{seq(3*bs+1, 127), seq(0, 130)}, "seq 1: block 130 is also written by seq 0"},
		{"read while written", []kernels.Seq{seq(0, 129), seq(2*bs+4, 128)}, "seq 1: reads block 129, which seq 0 writes in the same step"},
	} {
		err := kernels.CheckStep(m, bs, 300, &kernels.Batch{Seqs: tc.seqs})
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.msg != "" && (!errors.Is(err, kernels.ErrInvalidBatch) || err == nil || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%s: got %v; want ErrInvalidBatch with %q", tc.name, err, tc.msg)
		}
	}
}
