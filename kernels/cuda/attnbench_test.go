//go:build cgo

package cuda

import (
	"flag"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

var (
	attnBench      = flag.Bool("attnbench", false, "run TestAttnBench, decode attention alone at Llama-3.1-8B's head shapes")
	attnBenchCases = flag.String("attnbench.cases", "1x4096,1x32768,8x4096,64x2048,256x1024", "batch x context, comma-separated")
	attnBenchSplit = flag.String("attnbench.minsplit", "", "shortest splits to try, comma-separated (default: the package's)")
	attnBenchReps  = flag.Int("attnbench.reps", 50, "timed launches per case and kernel")
	attnBenchPF    = flag.Bool("attnbench.pf", false, "time gbx_attn_mma's _pf entry points (attnPFKernel) in its place")
	attnBenchRing  = flag.Bool("attnbench.ring", false, "time gbx_attn_mma's E4M3 _ring entry points (attnRingKernel) in its place")
)

// TestAttnBench times one layer's decode attention (a row per sequence,
// every sequence at its last position) on a BF16 cache with Llama-3.1-8B's
// heads (8 KV heads of 128 dims, 4 query heads each), blocks scattered at
// random, with gbx_attn_partial, gbx_attn_dec and gbx_attn_mma side by
// side, then gbx_attn_mma on an E4M3 cache (fp8 and fp4's), and reports
// the K and V bytes read per second (E4M3: values and scales) against the
// H200's 4.8 TB/s.
func TestAttnBench(t *testing.T) {
	if !*attnBench {
		t.Skip("the attention benchmark runs with -attnbench")
	}
	x := newDevT(t)
	x.do(func(d *devState) error { return d.k.load(modAttnMMA) })
	r := rand.New(rand.NewPCG(1, 2))
	splits := []int{attnMinSplitLen}
	if *attnBenchSplit != "" {
		splits = nil
		for _, f := range strings.Split(*attnBenchSplit, ",") {
			v, err := strconv.Atoi(f)
			if err != nil || v < kvBlock || v%kvBlock != 0 {
				t.Fatalf("-attnbench.minsplit: %q is not a multiple of %d", f, kvBlock)
			}
			splits = append(splits, v)
		}
	}
	defer func(was int) { attnMinSplitLen = was }(attnMinSplitLen)
	t.Logf("| shortest split | batch | context | KV MB | gbx_attn_partial µs | TB/s | gbx_attn_dec µs | TB/s | gbx_attn_mma µs | TB/s | E4M3 KV MB | gbx_attn_mma E4M3 µs | TB/s |")
	t.Logf("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, sp := range splits {
		attnMinSplitLen = sp
		for _, c := range strings.Split(*attnBenchCases, ",") {
			attnBenchCase(t, x, r, sp, c)
		}
	}
}

// attnBenchCase times one case of TestAttnBench, c = "BATCHxCONTEXT".
func attnBenchCase(t *testing.T, x *devT, r *rand.Rand, sp int, c string) {
	const kvHeads, group, dim = 8, 4, 128
	heads := kvHeads * group
	stride := (heads + 2*kvHeads) * dim
	bs, ns, ok := strings.Cut(c, "x")
	batch, err1 := strconv.Atoi(bs)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || batch < 1 || n < 1 {
		t.Fatalf("-attnbench.cases: %q is not BATCHxCONTEXT", c)
	}
	perSeq := (n + kvBlock - 1) / kvBlock
	nblk := batch * perSeq
	perm := r.Perm(nblk)
	flat := make([]int32, nblk)
	var btOff, pos, seq, split []int32
	for i := range batch {
		btOff = append(btOff, int32(i*perSeq))
		pos, seq, split = append(pos, int32(n-1)), append(seq, int32(i)), append(split, int32(attnSplit(n)))
	}
	for i := range flat {
		flat[i] = int32(perm[i])
	}
	// Enough layers that the launches, a layer each in turn, read
	// from memory rather than from the 50 MB L2.
	bytes := float64(batch) * float64(n) * 2 * kvHeads * dim * 2
	layers := max(1, int(math.Ceil(512e6/bytes)))
	elems := nblk * layers * 2 * kvHeads * kvBlock * dim
	// The E4M3 cache: a byte a value, a float scale per row.
	bytes8 := float64(batch) * float64(n) * 2 * kvHeads * (dim + 4)
	layers8 := max(1, int(math.Ceil(512e6/bytes8)))
	elems8 := nblk * layers8 * 2 * kvHeads * kvBlock * dim
	var cache, cache8 uint64
	x.do(func(d *devState) error {
		var err error
		if cache, err = cuMalloc(uint64(2 * elems)); err != nil {
			return err
		}
		if cache8, err = cuMalloc(uint64(elems8 + 4*elems8/dim)); err != nil {
			return err
		}
		if err := d.k.lmFill(d.stream, cache8, fmtE4M3, elems8, 8, -448, 448); err != nil {
			return err
		}
		if err := d.k.lmFill(d.stream, cache8+uint64(elems8), fmtF32, elems8/dim, 9, 1.0/448, 1.0/448); err != nil {
			return err
		}
		return d.k.lmFill(d.stream, cache, fmtBF16, elems, 7, -1, 1)
	})
	maxSplits := (n + attnSplit(n) - 1) / attnSplit(n)
	a := attnArgs{
		qkv: x.up(f32Bytes(randFloats(r, batch*stride, 1))), stride: stride, cache: cache, cacheFmt: fmtBF16, layers: layers,
		kvHeads: kvHeads, group: group, dim: dim, pos: x.up(i32Bytes(pos)), seq: x.up(i32Bytes(seq)),
		btOff: x.up(i32Bytes(btOff)), blocks: x.up(i32Bytes(flat)), split: x.up(i32Bytes(split)),
		scale: float32(1 / math.Sqrt(dim)), maxSplits: maxSplits, out: x.zeros(4 * batch * heads * dim),
		outStride: heads * dim, partO: x.zeros(4 * batch * heads * maxSplits * dim),
		partML: x.zeros(4 * batch * heads * maxSplits * 2), yqFmt: fmtBF16,
	}
	var us [4]float64
	var k *kernelSet // attnKernel reads nothing of it
	mma, mma8 := k.attnKernel(true, fmtBF16, dim, group), k.attnKernel(true, fmtE4M3, dim, group)
	if *attnBenchPF {
		mma, mma8 = k.attnPFKernel(fmtBF16, dim, group), k.attnPFKernel(fmtE4M3, dim, group)
	}
	if *attnBenchRing {
		mma8 = k.attnRingKernel(fmtE4M3, dim, group)
	}
	for i, dec := range []*kernel{nil, k.attnKernel(false, fmtBF16, dim, group), mma, mma8} {
		a.dec = dec
		nl := layers
		if i == 3 {
			a.cache, a.cacheFmt, a.kvScale, a.layers = cache8, fmtE4M3, cache8+uint64(elems8), layers8
			nl = layers8
		}
		x.do(func(d *devState) error {
			var ev [2]cuEvent
			for j := range ev {
				var err error
				if ev[j], err = cuEventCreate(); err != nil {
					return err
				}
				defer ev[j].destroy()
			}
			if err := d.lmAttention(batch, batch, a); err != nil { // warm-up
				return err
			}
			if err := ev[0].record(d.stream); err != nil {
				return err
			}
			for rep := range *attnBenchReps {
				a.layer = rep % nl
				if err := d.lmAttention(batch, batch, a); err != nil {
					return err
				}
			}
			if err := ev[1].record(d.stream); err != nil {
				return err
			}
			if err := ev[1].sync(); err != nil {
				return err
			}
			ms, err := ev[0].elapsed(ev[1])
			us[i] = float64(ms) * 1e3 / float64(*attnBenchReps)
			return err
		})
	}
	t.Logf("| %d | %d | %d | %.0f | %.1f | %.2f | %.1f | %.2f | %.1f | %.2f | %.0f | %.1f | %.2f |", sp, batch, n, bytes/1e6,
		us[0], bytes/us[0]/1e6, us[1], bytes/us[1]/1e6, us[2], bytes/us[2]/1e6, bytes8/1e6, us[3], bytes8/us[3]/1e6)
	x.do(func(d *devState) error {
		if err := d.stream.sync(); err != nil {
			return err
		}
		if err := cuFree(cache8); err != nil {
			return err
		}
		return cuFree(cache)
	})
}
