package cpu

import (
	"fmt"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// KVBlockSize is the number of tokens a block of the CPU's KV cache holds:
// kernels.KVBlockSize, as on every backend.
const KVBlockSize = kernels.KVBlockSize

// maxKVBytes bounds one cache's memory: a request for more is an error,
// not an allocation that takes the host down.
const maxKVBytes = 64 << 30

// kvCache is the CPU's paged KV cache. Block b holds, for each layer, K
// then V for its KVBlockSize positions, each position a row of KVHeads ×
// HeadDim values: element (b, layer, kv, slot, i) is at
// (((b·layers + layer)·2 + kv)·KVBlockSize + slot)·kvDim + i.
//
// Values are float32; at every precision other than fp32 and tf32 they are
// rounded to bf16 as they are written, so the cache holds exactly the
// values a bf16 cache would (in twice the memory).
type kvCache struct {
	m      *lm.Model
	p      precision.Format
	blocks int
	layers int
	kvDim  int
	bf16   bool
	data   []float32
}

var _ kernels.KVCache = (*kvCache)(nil)

// NewKVCache allocates a cache of blocks blocks for m at p (see
// kernels.LM). It fails with kernels.ErrUnsupported for a p that is not a
// concrete format, and with kernels.ErrInvalidBatch for a block count that
// is not positive or whose cache would pass 64 GiB.
func (b *Backend) NewKVCache(m *lm.Model, p precision.Format, blocks int) (kernels.KVCache, error) {
	if !b.Supports(p) {
		return nil, fmt.Errorf("cpu: %w: %q", kernels.ErrUnsupported, p)
	}
	if m == nil {
		return nil, fmt.Errorf("cpu: %w: nil model", kernels.ErrInvalidBatch)
	}
	c := &m.Config
	perBlock := int64(c.Layers) * 2 * KVBlockSize * int64(c.KVDim())
	if blocks <= 0 || int64(blocks) > maxKVBytes/4/perBlock {
		return nil, fmt.Errorf("cpu: %w: %d KV blocks of %d bytes: want 1 to %d", kernels.ErrInvalidBatch, blocks, 4*perBlock, maxKVBytes/4/perBlock)
	}
	return &kvCache{
		m: m, p: p, blocks: blocks, layers: c.Layers, kvDim: c.KVDim(),
		bf16: p != precision.FP32 && p != precision.TF32,
		data: make([]float32, int64(blocks)*perBlock),
	}, nil
}

// BlockSize returns KVBlockSize.
func (c *kvCache) BlockSize() int { return KVBlockSize }

// Blocks returns the number of blocks.
func (c *kvCache) Blocks() int { return c.blocks }

// Close drops the cache's memory. A closed cache fails every Step.
func (c *kvCache) Close() error {
	c.data = nil
	return nil
}

// offset is where the K (kv = 0) or V (kv = 1) row of position pos of a
// sequence with block table blocks starts, in layer.
func (c *kvCache) offset(blocks []int32, layer, kv, pos int) int {
	blk, slot := int(blocks[pos/KVBlockSize]), pos%KVBlockSize
	return (((blk*c.layers+layer)*2+kv)*KVBlockSize + slot) * c.kvDim
}

// span returns the K or V rows of positions [pos, pos+n): n·kvDim
// contiguous values; pos and pos+n−1 must be in one block.
func (c *kvCache) span(blocks []int32, layer, kv, pos, n int) []float32 {
	at := c.offset(blocks, layer, kv, pos)
	return c.data[at : at+n*c.kvDim : at+n*c.kvDim]
}

// write stores src as the K or V row of pos, rounded to the cache's
// format.
func (c *kvCache) write(blocks []int32, layer, kv, pos int, src []float32) {
	dst := c.span(blocks, layer, kv, pos, 1)
	if c.bf16 {
		precision.RoundBF16Slice(dst, src)
	} else {
		copy(dst, src)
	}
}
