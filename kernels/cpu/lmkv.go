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
// It holds kernels.KVFormat(p): at fp32 and tf32 float32 values; at bf16
// and fp16 float32 values rounded to bf16 as they are written (exactly the
// values a bf16 cache holds, in twice the memory); at fp8 and fp4 E4M3
// bytes (q) and one float32 scale per (position, KV head) row of K and of
// V (scale, indexed by element offset / headDim), as the CUDA backend
// stores them.
type kvCache struct {
	m       *lm.Model
	p       precision.Format
	blocks  int
	layers  int
	kvDim   int
	headDim int
	bf16    bool
	data    []float32 // fp32, tf32, bf16, fp16
	q       []uint8   // fp8, fp4: the values
	scale   []float32 // fp8, fp4: a scale per row of headDim values
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
	f := kernels.KVFormat(p)
	perBlock := int64(c.Layers) * 2 * KVBlockSize * int64(c.KVDim()) // values
	bytes := 4 * perBlock
	if f == precision.FP8 {
		bytes = kernels.KVBlockBytes(c, f)
	}
	if blocks <= 0 || int64(blocks) > maxKVBytes/bytes {
		return nil, fmt.Errorf("cpu: %w: %d KV blocks of %d bytes: want 1 to %d", kernels.ErrInvalidBatch, blocks, bytes, maxKVBytes/bytes)
	}
	kv := &kvCache{
		m: m, p: p, blocks: blocks, layers: c.Layers, kvDim: c.KVDim(), headDim: c.HeadDim,
		bf16: f == precision.BF16,
	}
	if f == precision.FP8 {
		kv.q = make([]uint8, int64(blocks)*perBlock)
		kv.scale = make([]float32, int64(blocks)*perBlock/int64(c.HeadDim))
	} else {
		kv.data = make([]float32, int64(blocks)*perBlock)
	}
	return kv, nil
}

// BlockSize returns KVBlockSize.
func (c *kvCache) BlockSize() int { return KVBlockSize }

// Blocks returns the number of blocks.
func (c *kvCache) Blocks() int { return c.blocks }

// Close drops the cache's memory. A closed cache fails every Step.
func (c *kvCache) Close() error {
	c.data, c.q, c.scale = nil, nil, nil
	return nil
}

// closed reports whether Close has run.
func (c *kvCache) closed() bool { return c.data == nil && c.q == nil }

// offset is where the K (kv = 0) or V (kv = 1) row of position pos of a
// sequence with block table blocks starts, in layer.
func (c *kvCache) offset(blocks []int32, layer, kv, pos int) int {
	blk, slot := int(blocks[pos/KVBlockSize]), pos%KVBlockSize
	return (((blk*c.layers+layer)*2+kv)*KVBlockSize + slot) * c.kvDim
}

// head writes the K or V values of KV head g at position pos to dst
// (headDim values), widened exactly: E4M3 values as DecodeE4M3(q) × scale
// in float64.
func (c *kvCache) head(dst []float64, blocks []int32, layer, kv, pos, g int) {
	at := c.offset(blocks, layer, kv, pos) + g*c.headDim
	if c.q == nil {
		for i, v := range c.data[at : at+c.headDim] {
			dst[i] = float64(v)
		}
		return
	}
	s := float64(c.scale[at/c.headDim])
	for i, b := range c.q[at : at+c.headDim] {
		dst[i] = float64(precision.DecodeE4M3(b)) * s
	}
}

// write stores src as the K or V row of pos, in the cache's format: E4M3
// with each head's scale FP8Scale(amax, 0).
func (c *kvCache) write(blocks []int32, layer, kv, pos int, src []float32) {
	at := c.offset(blocks, layer, kv, pos)
	switch {
	case c.q != nil:
		for g := 0; g < c.kvDim; g += c.headDim {
			h := src[g : g+c.headDim]
			s := precision.FP8Scale(precision.Amax(h), 0)
			c.scale[(at+g)/c.headDim] = s
			precision.EncodeE4M3Slice(c.q[at+g:at+g+c.headDim], h, s)
		}
	case c.bf16:
		precision.RoundBF16Slice(c.data[at:at+c.kvDim], src)
	default:
		copy(c.data[at:at+c.kvDim], src)
	}
}
