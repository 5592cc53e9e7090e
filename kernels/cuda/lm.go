//go:build cgo

package cuda

import (
	"context"
	"errors"
	"fmt"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

var _ kernels.LM = (*Backend)(nil)

// Compile-time checks that abi.h agrees with package kernels: an "invalid
// array index" error here means they drifted apart.
func _() {
	var x [1]struct{}
	_ = x[kvBlock-kernels.KVBlockSize]
	_ = x[maxTop-kernels.MaxTopLogprobs]
}

// maxKVBytes bounds one cache, as the CPU backend does: a request for more
// is an error, not an allocation attempt.
const maxKVBytes = 1 << 40

// kvCache is a paged KV cache on the device: blocks+1 blocks of kvBlock
// positions (the last one is scratch, never in a block table), each
// holding every layer's K and V in kernels.KVFormat(p) — f32, bf16, or
// E4M3 with one scale per row, the scales after every block's values —
// laid out as abi.h's GBX_KV_BLOCK says.
type kvCache struct {
	b      *Backend
	m      *lm.Model
	p      precision.Format
	blocks int
	f      fmtCode // fmtF32, fmtBF16 or fmtE4M3
	ptr    uint64  // 0 once closed
	scale  uint64  // fmtE4M3: the scales, else 0
	bytes  uint64
}

var _ kernels.KVCache = (*kvCache)(nil)

// kvFmt is the cache's format at p (kernels.KVFormat).
func kvFmt(p precision.Format) fmtCode {
	switch kernels.KVFormat(p) {
	case precision.FP32:
		return fmtF32
	case precision.FP8:
		return fmtE4M3
	}
	return fmtBF16
}

// kvValueBytes is the bytes of one block's values in format f (an E4M3
// block's scales are kernels.KVBlockBytes less these).
func kvValueBytes(c *lm.Config, f fmtCode) int64 {
	return int64(c.Layers) * 2 * kvBlock * int64(c.KVDim()) * int64(fmtSize(f))
}

// NewKVCache allocates a cache of blocks blocks for m at p on the device
// (see kernels.LM), zeroed. It fails with kernels.ErrUnsupported for a p
// the device cannot run or shapes the kernels do not take, with
// kernels.ErrInvalidBatch for a block count that is not positive or whose
// cache would pass 1 TiB, with an error wrapping ErrOutOfMemory when the
// device has no room, and with ErrClosed after Close.
func (b *Backend) NewKVCache(m *lm.Model, p precision.Format, blocks int) (kernels.KVCache, error) {
	if !b.Supports(p) {
		return nil, fmt.Errorf("cuda: %w: %q on %s", kernels.ErrUnsupported, p, b.caps.Device)
	}
	if m == nil {
		return nil, fmt.Errorf("cuda: %w: nil model", kernels.ErrInvalidBatch)
	}
	if err := lmSupported(m); err != nil {
		return nil, err
	}
	f := kvFmt(p)
	per := kernels.KVBlockBytes(&m.Config, kernels.KVFormat(p))
	if blocks <= 0 || int64(blocks) >= maxKVBytes/per {
		return nil, fmt.Errorf("cuda: %w: %d KV blocks of %d bytes: want 1 to %d", kernels.ErrInvalidBatch, blocks, per, maxKVBytes/per-1)
	}
	c := &kvCache{b: b, m: m, p: p, blocks: blocks, f: f, bytes: uint64(int64(blocks+1) * per)}
	err := b.do(context.Background(), func(d *devState) error {
		if err := d.k.load(modLM); err != nil {
			return err
		}
		ptr, err := cuMalloc(c.bytes)
		if err != nil {
			return err
		}
		err = d.stream.memset32(ptr, 0, int(c.bytes/4))
		if err == nil {
			err = d.stream.sync()
		}
		if err != nil {
			_ = cuFree(ptr)
			return err
		}
		c.ptr = ptr
		if f == fmtE4M3 {
			c.scale = ptr + uint64(int64(blocks+1)*kvValueBytes(&m.Config, f))
		}
		d.lm.caches[c] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cuda: KV cache of %d blocks (%d bytes) for model %q: %w", blocks, c.bytes, m.Name, err)
	}
	return c, nil
}

// BlockSize returns kernels.KVBlockSize.
func (c *kvCache) BlockSize() int { return kvBlock }

// Blocks returns the number of blocks.
func (c *kvCache) Blocks() int { return c.blocks }

// Close frees the cache's device memory; a closed cache fails every Step.
// After the backend's Close (which frees it) it does nothing.
func (c *kvCache) Close() error {
	if c.ptr == 0 {
		return nil
	}
	err := c.b.do(context.Background(), func(d *devState) error {
		if !d.lm.caches[c] {
			return nil
		}
		err := d.stream.sync()
		d.lm.dropGraphs()
		delete(d.lm.caches, c)
		if ferr := cuFree(c.ptr); err == nil {
			err = ferr
		}
		return err
	})
	c.ptr = 0
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// Step runs one engine step of m at precision p over the cache kv (see
// kernels.LM). It fails with kernels.ErrUnsupported for a p the device
// cannot run, with kernels.ErrInvalidBatch (naming the sequence and field)
// for a batch that breaks kernels.CheckStep's rules or a cache of another
// model or precision, with ctx.Err() when ctx ends first (checked between
// layers), and with ErrClosed after Close. The first Step of m at p uploads
// m's weights; later ones reuse them until EvictLM.
//
// A sequence's results follow the CPU backend's numerics at p up to the
// order of floating-point sums (docs/models-lm.md); unlike the CPU's they
// are not bit-for-bit independent of the other sequences of the step, as
// cuBLASLt's kernels depend on the number of rows.
func (b *Backend) Step(ctx context.Context, m *lm.Model, p precision.Format, kv kernels.KVCache, batch *kernels.Batch) ([]kernels.SeqOut, error) {
	if !b.Supports(p) {
		return nil, fmt.Errorf("cuda: %w: %q on %s", kernels.ErrUnsupported, p, b.caps.Device)
	}
	cache, ok := kv.(*kvCache)
	switch {
	case !ok:
		return nil, fmt.Errorf("cuda: %w: KV cache of type %T is not the CUDA backend's", kernels.ErrInvalidBatch, kv)
	case cache.b != b:
		return nil, fmt.Errorf("cuda: %w: KV cache belongs to another device", kernels.ErrInvalidBatch)
	case cache.m != m || cache.p != p:
		return nil, fmt.Errorf("cuda: %w: KV cache belongs to another model or precision (%s at %s)", kernels.ErrInvalidBatch, cache.m.Name, cache.p)
	case cache.ptr == 0:
		return nil, fmt.Errorf("cuda: %w: KV cache is closed", kernels.ErrInvalidBatch)
	}
	if err := kernels.CheckStep(m, kvBlock, cache.blocks, batch); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(batch.Seqs) == 0 {
		return nil, nil
	}
	pl := newLMPlan(batch.Seqs, m.Config.Vocab)
	var outs []kernels.SeqOut
	err := b.do(ctx, func(d *devState) error {
		if !d.lm.caches[cache] {
			return fmt.Errorf("cuda: %w: KV cache is closed", kernels.ErrInvalidBatch)
		}
		var err error
		outs, err = d.lmStep(ctx, m, p, cache, pl)
		return err
	})
	if err != nil {
		return nil, err
	}
	return outs, nil
}

// EvictLM frees the device copies of m's weights at every precision. A
// later Step uploads them again.
func (b *Backend) EvictLM(m *lm.Model) {
	_ = b.do(context.Background(), func(d *devState) error {
		d.evictLM(m)
		return nil
	})
}
