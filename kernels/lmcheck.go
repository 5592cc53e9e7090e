package kernels

import (
	"fmt"
	"math"
	"slices"

	"github.com/gearbox-inference/gearbox/model/lm"
)

// CheckStep reports whether a step of b on m can run over a cache of
// blocks blocks of blockSize tokens: every rule of Seq and Sampling, token
// ids within the vocabulary, positions within the model's MaxPositions,
// block tables that cover the positions with valid block ids, and no block
// written by one sequence and written or read by another. Backends call it
// first, so that a bad batch is an error rather than a panic or a silent
// overwrite. Errors wrap ErrInvalidBatch and name the sequence and field.
func CheckStep(m *lm.Model, blockSize, blocks int, b *Batch) error {
	if m == nil || b == nil {
		return fmt.Errorf("%w: nil model or batch", ErrInvalidBatch)
	}
	c := &m.Config
	// written marks the blocks the sequences write this step; the readers'
	// check looks at every block of every table (a decode step of 256
	// sequences at 1,500 positions reads 24,000), so it tests bits, and
	// looks for the writer only when one is set.
	written := make([]uint64, (blocks+63)/64)
	for i := range b.Seqs {
		s := &b.Seqs[i]
		if err := checkSeq(c, blockSize, blocks, s); err != nil {
			return fmt.Errorf("%w: seq %d: %v", ErrInvalidBatch, i, err)
		}
		for _, blk := range writes(s, blockSize) {
			w, bit := uint32(blk)/64, uint64(1)<<(uint32(blk)%64)
			if written[w]&bit != 0 {
				return fmt.Errorf("%w: seq %d: block %d is also written by seq %d", ErrInvalidBatch, i, blk, writerOf(b.Seqs[:i], blockSize, blk))
			}
			written[w] |= bit
		}
	}
	for i := range b.Seqs {
		s := &b.Seqs[i]
		// The blocks it reads, but the one it also writes (a partial last
		// block: its own, the writes' check saw to that).
		for _, blk := range s.Blocks[:s.Pos/blockSize] {
			if written[uint32(blk)/64]&(uint64(1)<<(uint32(blk)%64)) == 0 {
				continue
			}
			if j := writerOf(b.Seqs, blockSize, blk); j != i {
				return fmt.Errorf("%w: seq %d: reads block %d, which seq %d writes in the same step", ErrInvalidBatch, i, blk, j)
			}
		}
	}
	return nil
}

// writes is the part of s's block table that a step feeding s writes.
func writes(s *Seq, blockSize int) []int32 {
	return s.Blocks[s.Pos/blockSize : (s.Pos+len(s.Tokens)-1)/blockSize+1]
}

// writerOf is the first of seqs that writes blk, or -1.
func writerOf(seqs []Seq, blockSize int, blk int32) int {
	for i := range seqs {
		if slices.Contains(writes(&seqs[i], blockSize), blk) {
			return i
		}
	}
	return -1
}

// checkSeq checks one sequence on its own.
func checkSeq(c *lm.Config, blockSize, blocks int, s *Seq) error {
	n := len(s.Tokens)
	switch {
	case n == 0:
		return fmt.Errorf("no tokens")
	case s.Pos < 0:
		//lint:ignore ST1005 the message starts with the name of the Go field at fault
		return fmt.Errorf("Pos %d is negative", s.Pos)
	case s.Pos > c.MaxPositions-n:
		return fmt.Errorf("positions %d to %d pass the model's max_position_embeddings %d", s.Pos, s.Pos+n-1, c.MaxPositions)
	case len(s.Blocks) < (s.Pos+n+blockSize-1)/blockSize:
		return fmt.Errorf("%d blocks of %d tokens do not cover positions up to %d", len(s.Blocks), blockSize, s.Pos+n-1)
	case s.Want&^wantAll != 0:
		return fmt.Errorf("Want %#x has unknown bits", s.Want)
	case s.Want&WantTarget != 0 && s.Want&WantLogprobs == 0:
		return fmt.Errorf("WantTarget without WantLogprobs")
	case s.LogitRows < 0 || s.LogitRows > n:
		return fmt.Errorf("LogitRows %d must be 0 to the %d tokens fed", s.LogitRows, n)
	case s.LogitRows > 1 && s.Want&WantLogits == 0:
		return fmt.Errorf("LogitRows %d without WantLogits", s.LogitRows)
	}
	for k := range (s.Pos + n + blockSize - 1) / blockSize {
		if b := s.Blocks[k]; b < 0 || int(b) >= blocks {
			//lint:ignore ST1005 the message starts with the name of the Go field at fault
			return fmt.Errorf("Blocks[%d] = %d is not a block of the cache (0 to %d)", k, b, blocks-1)
		}
	}
	for i, t := range s.Tokens {
		if t < 0 || int(t) >= c.Vocab {
			//lint:ignore ST1005 the message starts with the name of the Go field at fault
			return fmt.Errorf("Tokens[%d] = %d is not a token id (vocab %d)", i, t, c.Vocab)
		}
	}
	if s.Want&WantTarget != 0 && (s.Target < 0 || int(s.Target) >= c.Vocab) {
		//lint:ignore ST1005 the message starts with the name of the Go field at fault
		return fmt.Errorf("Target %d is not a token id (vocab %d)", s.Target, c.Vocab)
	}
	if s.Want&WantSample != 0 {
		sp := &s.Sampling
		switch {
		case !(sp.Temperature >= 0) || math.IsInf(float64(sp.Temperature), 0):
			return fmt.Errorf("Sampling.Temperature %v must be a finite number >= 0", sp.Temperature)
		case sp.TopK < 0:
			return fmt.Errorf("Sampling.TopK %d must be >= 0", sp.TopK)
		case !(sp.TopP >= 0 && sp.TopP <= 1):
			return fmt.Errorf("Sampling.TopP %v must be in [0, 1]", sp.TopP)
		case sp.TopLogprobs < 0 || sp.TopLogprobs > MaxTopLogprobs:
			return fmt.Errorf("Sampling.TopLogprobs %d must be 0 to %d", sp.TopLogprobs, MaxTopLogprobs)
		}
	}
	return nil
}
