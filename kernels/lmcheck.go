package kernels

import (
	"fmt"
	"math"

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
	// writer maps each block a sequence writes this step to that sequence.
	writer := make(map[int32]int)
	for i := range b.Seqs {
		s := &b.Seqs[i]
		if err := checkSeq(c, blockSize, blocks, s); err != nil {
			return fmt.Errorf("%w: seq %d: %v", ErrInvalidBatch, i, err)
		}
		for k := s.Pos / blockSize; k <= (s.Pos+len(s.Tokens)-1)/blockSize; k++ {
			blk := s.Blocks[k]
			if j, ok := writer[blk]; ok {
				return fmt.Errorf("%w: seq %d: block %d is also written by seq %d", ErrInvalidBatch, i, blk, j)
			}
			writer[blk] = i
		}
	}
	for i := range b.Seqs {
		s := &b.Seqs[i]
		for k := range (s.Pos + blockSize - 1) / blockSize { // the blocks it reads
			if j, ok := writer[s.Blocks[k]]; ok && j != i {
				return fmt.Errorf("%w: seq %d: reads block %d, which seq %d writes in the same step", ErrInvalidBatch, i, s.Blocks[k], j)
			}
		}
	}
	return nil
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
