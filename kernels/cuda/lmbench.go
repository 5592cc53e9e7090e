//go:build cgo

package cuda

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// BenchLM times decode steps of a model with random weights (cfg.Config,
// default Llama-3.1-8B's shapes) at each precision, batch size and
// context length of cfg, through Step, and reports tokens per second
// against the memory-bandwidth ceiling (LMResult). Each precision's
// weights are generated on the device and evicted after its cases.
func (b *Backend) BenchLM(ctx context.Context, cfg LMBench) ([]LMResult, error) {
	c := Llama31_8B
	if cfg.Config != nil {
		c = *cfg.Config
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cuda: bench: %w", err)
	}
	precs := orDefault(cfg.Precisions, []precision.Format{precision.BF16, precision.FP8, precision.FP4})
	batches := orDefault(cfg.Batches, []int{1, 8, 64, 256})
	prompts := orDefault(cfg.Prompts, []int{128, 2048})
	if cfg.Steps == 0 {
		cfg.Steps = 20
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 3
	}
	if cfg.PrefillTokens == 0 {
		cfg.PrefillTokens = 2048
	}
	if cfg.Steps < 0 || cfg.Warmup < 0 || cfg.PrefillTokens < 0 || !(cfg.MinSeconds >= 0) || math.IsInf(cfg.MinSeconds, 1) {
		return nil, fmt.Errorf("cuda: bench: Steps %d, Warmup %d, PrefillTokens %d, MinSeconds %v: want none negative, MinSeconds finite", cfg.Steps, cfg.Warmup, cfg.PrefillTokens, cfg.MinSeconds)
	}
	for _, n := range prompts {
		if n < 0 || cfg.Prefill && n == 0 {
			return nil, fmt.Errorf("cuda: bench: prompt of %d tokens: want at least 1 (0 without Prefill)", n)
		}
		if end := n + cfg.Warmup + cfg.Steps + 1; end > c.MaxPositions {
			return nil, fmt.Errorf("cuda: bench: prompt of %d tokens: with %d + %d steps a context of %d passes max_position_embeddings %d", n, cfg.Warmup, cfg.Steps, end, c.MaxPositions)
		}
	}
	m := &lm.Model{Name: "bench-" + string(c.Arch), Config: c}
	if err := lmSupported(m); err != nil {
		return nil, err
	}
	if cfg.GEMVMaxRows < -1 || cfg.GEMVMaxRows > gemvMaxM {
		return nil, fmt.Errorf("cuda: bench: GEMVMaxRows = %d, want -1 to %d", cfg.GEMVMaxRows, gemvMaxM)
	}
	if cfg.FP4SmallM < -1 {
		return nil, fmt.Errorf("cuda: bench: FP4SmallM = %d, want -1 or more", cfg.FP4SmallM)
	}
	if cfg.AttnScratchMiB < 0 || cfg.AttnScratchMiB > 4096 {
		return nil, fmt.Errorf("cuda: bench: AttnScratchMiB = %d, want 0 to 4,096", cfg.AttnScratchMiB)
	}
	if w := cfg.AttnPrefillWG; w < -1 || w > 1 || w > 0 && (b.info.Major != 9 || b.info.Minor != 0) {
		return nil, fmt.Errorf("cuda: bench: AttnPrefillWG = %d on compute capability %d.%d, want -1, 0, or 1 on 9.0", w, b.info.Major, b.info.Minor)
	}
	if r := cfg.RowThreads; r != 0 && r != 256 && r != 512 && r != 1024 {
		return nil, fmt.Errorf("cuda: bench: RowThreads = %d, want 256, 512 or 1,024", r)
	}
	if cfg.FP4WideMinWeights < -1 {
		return nil, fmt.Errorf("cuda: bench: FP4WideMinWeights = %d, want -1 or more", cfg.FP4WideMinWeights)
	}
	// The run's overrides of the device's settings, put back at the end.
	type settings struct {
		gemvMaxM, fp4SmallM, fp4WideM     int
		fp4WideMinW                       int64
		attnDec, attnPartial, pdl, fp4Row bool
		attnRing, regsRows, siluRowMin    int
		rowThreads, attnScratch, pfForm   int
		attnPrefill, graphs               bool
	}
	var was settings
	_ = b.do(ctx, func(d *devState) error {
		was = settings{d.gemvMaxM, d.fp4SmallM, d.fp4WideM, d.fp4WideMinW, d.attnDec, d.attnPartial, d.k.pdl, d.fp4RowMajor, d.attnRing, d.k.regsRows, d.k.siluRowMin, d.k.rowThreads, attnScratchBytes, d.attnPrefillForm, d.attnPrefill, d.useGraphs}
		d.fp4RowMajor = cfg.FP4RowMajor
		if cfg.GEMVMaxRows != 0 {
			d.gemvMaxM = cfg.GEMVMaxRows
		}
		if cfg.FP4SmallM != 0 {
			d.fp4SmallM = cfg.FP4SmallM
		}
		if cfg.FP4WideM != 0 {
			d.fp4WideM = cfg.FP4WideM
		}
		if cfg.FP4WideMinWeights != 0 {
			d.fp4WideMinW = cfg.FP4WideMinWeights
		}
		d.attnDec = d.attnDec || cfg.AttnDec
		if cfg.AttnRing != 0 {
			d.attnRing = cfg.AttnRing
		}
		if cfg.RegsRows != 0 {
			d.k.regsRows = cfg.RegsRows
		}
		if cfg.SiLURow != 0 {
			d.k.siluRowMin = cfg.SiLURow
		}
		if cfg.RowThreads != 0 {
			d.k.rowThreads = cfg.RowThreads
		}
		d.attnPrefill = d.attnPrefill && !cfg.NoAttnPrefill
		switch cfg.AttnPrefillWG {
		case -1:
			d.attnPrefillForm = pfMMA
		case 1:
			d.attnPrefillForm = pfWG
		}
		if cfg.AttnScratchMiB != 0 {
			attnScratchBytes = cfg.AttnScratchMiB << 20
		}
		d.attnPartial = d.attnPartial || cfg.AttnPartial
		d.k.pdl = d.k.pdl && !cfg.NoPDL
		d.useGraphs = d.useGraphs && !cfg.NoGraphs
		return nil
	})
	defer func() {
		_ = b.do(ctx, func(d *devState) error {
			d.gemvMaxM, d.fp4SmallM, d.fp4WideM, d.attnDec, d.attnPartial, d.k.pdl = was.gemvMaxM, was.fp4SmallM, was.fp4WideM, was.attnDec, was.attnPartial, was.pdl
			d.fp4WideMinW = was.fp4WideMinW
			d.fp4RowMajor = was.fp4Row
			d.attnRing = was.attnRing
			d.k.regsRows, d.k.siluRowMin, d.k.rowThreads = was.regsRows, was.siluRowMin, was.rowThreads
			attnScratchBytes, d.attnPrefill, d.attnPrefillForm = was.attnScratch, was.attnPrefill, was.pfForm
			d.useGraphs = was.graphs
			return nil
		})
	}()
	var out []LMResult
	for _, p := range precs {
		if !b.Supports(p) {
			return out, fmt.Errorf("cuda: bench: %w: %q on %s", kernels.ErrUnsupported, p, b.caps.Device)
		}
		err := b.do(ctx, func(d *devState) error { return d.lmSynthWeights(m, p) })
		if err != nil {
			return out, fmt.Errorf("cuda: bench: %s weights: %w", p, err)
		}
		for _, prompt := range prompts {
			for _, batch := range batches {
				res, err := b.benchLMCase(ctx, m, p, batch, prompt, &cfg)
				if err != nil {
					b.EvictLM(m)
					return out, fmt.Errorf("cuda: bench: %s batch %d prompt %d: %w", p, batch, prompt, err)
				}
				if cfg.Progress != nil {
					cfg.Progress(res)
				}
				out = append(out, res)
			}
		}
		b.EvictLM(m)
	}
	return out, nil
}

func orDefault[T any](v, def []T) []T {
	if len(v) == 0 {
		return def
	}
	return v
}

// benchLMCase runs cfg.Warmup + cfg.Steps decode steps of batch sequences
// from prompt positions of context (random values in the cache, or, with
// cfg.Prefill, the prompts prefilled and timed), the timed steps again from
// the same positions until cfg.MinSeconds have passed.
func (b *Backend) benchLMCase(ctx context.Context, m *lm.Model, p precision.Format, batch, prompt int, cfg *LMBench) (res LMResult, err error) {
	c := &m.Config
	warmup, steps := cfg.Warmup, cfg.Steps
	n := prompt + warmup + steps + 1 // within MaxPositions: BenchLM checked
	per := (n + kvBlock - 1) / kvBlock
	kvc, err := b.NewKVCache(m, p, batch*per)
	if err != nil {
		return LMResult{}, err
	}
	defer func() {
		if cerr := kvc.Close(); err == nil {
			err = cerr
		}
	}()
	ids := make([]int32, batch*per)
	for i := range ids {
		ids[i] = int32(i)
	}
	if cfg.ScatterBlocks {
		rand.New(rand.NewPCG(5, uint64(batch))).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	}
	seqs := make([]kernels.Seq, batch)
	for i := range seqs {
		blocks := ids[i*per : (i+1)*per : (i+1)*per]
		seqs[i] = kernels.Seq{Tokens: []int32{int32(i % c.Vocab)}, Pos: prompt, Blocks: blocks, Want: kernels.WantSample}
	}
	r := LMResult{Precision: p, Batch: batch, Prompt: prompt}
	if cfg.Prefill {
		err = b.benchPrefill(ctx, m, p, kvc, seqs, cfg.PrefillTokens, &r)
	} else {
		err = b.fillKV(ctx, c, kvc.(*kvCache))
	}
	if err != nil {
		return LMResult{}, err
	}
	step := func() error {
		outs, err := b.Step(ctx, m, p, kvc, &kernels.Batch{Seqs: seqs})
		if err != nil {
			return err
		}
		for i := range seqs {
			seqs[i].Pos++
			seqs[i].Tokens = []int32{outs[i].Token}
		}
		return nil
	}
	for range warmup {
		if err := step(); err != nil {
			return LMResult{}, err
		}
	}
	// The timed steps, run again from the same positions and tokens (the
	// cache's entries there written again) until MinSeconds have passed.
	from := make([]int32, batch)
	for i := range seqs {
		from[i] = seqs[i].Tokens[0]
	}
	var e0 float64
	if cfg.Energy != nil {
		if e0, err = cfg.Energy(); err != nil {
			return LMResult{}, fmt.Errorf("energy counter: %w", err)
		}
	}
	var times []float64
	for t0 := time.Now(); len(times) == 0 || time.Since(t0).Seconds() < cfg.MinSeconds; {
		for i := range seqs {
			seqs[i].Pos, seqs[i].Tokens = prompt+warmup, []int32{from[i]}
		}
		for range steps {
			ts := time.Now()
			if err := step(); err != nil {
				return LMResult{}, err
			}
			times = append(times, time.Since(ts).Seconds()*1e3)
		}
	}
	if cfg.Energy != nil {
		e1, err := cfg.Energy()
		if err != nil {
			return LMResult{}, fmt.Errorf("energy counter: %w", err)
		}
		j := (e1 - e0) / float64(batch*len(times)) * 1000
		r.JoulesPer1kTokens = &j
	}
	r.TimedSteps = len(times)
	slices.Sort(times)
	r.StepMS, r.MinMS = times[len(times)/2], times[0]
	r.TokPerS = float64(batch) / (r.StepMS / 1e3)
	_ = b.do(ctx, func(d *devState) error {
		r.WeightBytes = lmStepWeightBytes(c, p, func(n, k int) bool { return d.useFP4Kernel(batch, n, k, !d.fp4RowMajor) })
		return nil
	})
	meanCtx := float64(prompt+warmup) + float64(steps)/2 + 1
	r.KVBytes = int64(float64(batch) * meanCtx * float64(kernels.KVBlockBytes(c, kernels.KVFormat(p))) / kvBlock)
	r.CeilingTokPerS = float64(batch) * HBMBandwidth / float64(r.WeightBytes+r.KVBytes)
	r.Fraction = r.TokPerS / r.CeilingTokPerS
	return r, nil
}

// fillKV writes random values into every block of kv: values in ±1
// (E4M3: codes in ±448, every scale 1/448).
func (b *Backend) fillKV(ctx context.Context, c *lm.Config, kv *kvCache) error {
	return b.do(ctx, func(d *devState) error {
		n := int64(kv.blocks+1) * kvValueBytes(c, kv.f) / int64(fmtSize(kv.f))
		lo, hi := float32(-1), float32(1)
		if kv.f == fmtE4M3 {
			lo, hi = -448, 448
			if err := d.k.lmFill(d.stream, kv.scale, fmtF32, int((kv.ptr+kv.bytes-kv.scale)/4), 0xcacf, 1.0/448, 1.0/448); err != nil {
				return err
			}
		}
		if err := d.k.lmFill(d.stream, kv.ptr, kv.f, int(n), 0xcace, lo, hi); err != nil {
			return err
		}
		return d.stream.sync()
	})
}

// benchPrefill prefills seqs' prompts (positions 0 … Pos−1 of each, random
// tokens) into kv, at most budget tokens a step, the sequences in order and
// a prompt split over steps where it does not fit, and sets each
// sequence's token to the one its prefill sampled and r's TTFT figures
// (the first step run once untimed before).
func (b *Backend) benchPrefill(ctx context.Context, m *lm.Model, p precision.Format, kv kernels.KVCache, seqs []kernels.Seq, budget int, r *LMResult) error {
	rng := rand.New(rand.NewPCG(uint64(len(seqs)), uint64(seqs[0].Pos)))
	prompts := make([][]int32, len(seqs))
	for i := range prompts {
		prompts[i] = make([]int32, seqs[i].Pos)
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(m.Config.Vocab))
		}
	}
	// chunk returns the next step's batch, the sequences from next on
	// with fed[i] tokens fed, and whose sequence each of its entries is,
	// and counts the tokens it feeds into fed.
	chunk := func(fed []int, next int) (batch kernels.Batch, whose []int) {
		for i, left := next, budget; i < len(seqs) && left > 0; i++ {
			n := min(len(prompts[i])-fed[i], left)
			s := kernels.Seq{Tokens: prompts[i][fed[i] : fed[i]+n], Pos: fed[i], Blocks: seqs[i].Blocks}
			if fed[i] += n; fed[i] == len(prompts[i]) {
				s.Want = kernels.WantSample
			}
			batch.Seqs, whose = append(batch.Seqs, s), append(whose, i)
			left -= n
		}
		return batch, whose
	}
	// The first step once untimed: a step of a shape not seen before plans
	// its GEMMs (cuBLASLt's heuristics), which is not prefill's time. The
	// other steps have its shape, but for a last one shorter where the
	// prompts' tokens are not a multiple of budget (timed with its plan).
	// The engine's cap on sequences a step is not modelled: a step takes
	// as many whole prompts as budget holds.
	fed := make([]int, len(seqs))
	warm, _ := chunk(slices.Clone(fed), 0)
	if _, err := b.Step(ctx, m, p, kv, &warm); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	var ttft []float64
	t0 := time.Now()
	for next := 0; next < len(seqs); {
		batch, whose := chunk(fed, next)
		outs, err := b.Step(ctx, m, p, kv, &batch)
		if err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
		at := time.Since(t0).Seconds() * 1e3
		for j, i := range whose {
			if fed[i] == len(prompts[i]) {
				seqs[i].Tokens = []int32{outs[j].Token}
				ttft = append(ttft, at)
			}
		}
		for next < len(seqs) && fed[next] == len(prompts[next]) {
			next++
		}
	}
	r.TTFTMS, r.LastTTFTMS = ttft[len(ttft)/2], ttft[len(ttft)-1] // the upper median of an even batch
	r.PrefillTokPerS = float64(len(seqs)*len(prompts[0])) / (r.LastTTFTMS / 1e3)
	return nil
}

// lmStepWeightBytes is the weight bytes one decode step of c at p reads:
// every layer's projections (fp4 where fp4Kernel says an n × k layer runs
// on an NVFP4 kernel: E2M1, block scales; elsewhere the bf16 copy) and the
// head (bf16 at fp8 and fp4);
// the embedding lookup reads a row per token, left out.
func lmStepWeightBytes(c *lm.Config, p precision.Format, fp4Kernel func(n, k int) bool) int64 {
	h, q, kv, in := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	var layer int64
	for _, s := range [][2]int{{q + 2*kv, h}, {h, q}, {2 * in, h}, {h, in}} {
		switch {
		case p == precision.FP4 && fp4Kernel(s[0], s[1]):
			layer += precision.NVFP4Bytes(s[0], s[1])
		case p == precision.FP4:
			layer += precision.WeightBytes(precision.BF16, s[0], s[1])
		default:
			layer += precision.WeightBytes(p, s[0], s[1])
		}
	}
	return int64(c.Layers)*layer + precision.WeightBytes(kernels.LMHeadFormat(p), c.Vocab, h)
}

// lmSynthWeights generates random weights for m at p on the device, in
// the layout lmWeightsFor uploads (lmWeights), and caches them under (m, p)
// as uploaded weights are: linear weights uniform with variance 1/k, norms
// 1, embeddings uniform in ±1. Their values mean nothing; their bytes and
// layout are a real model's.
func (d *devState) lmSynthWeights(m *lm.Model, p precision.Format) error {
	if err := d.k.load(modLM); err != nil {
		return err
	}
	d.evictLM(m)
	c := &m.Config
	u := &lmUploader{d: d, w: &lmWeights{p: p}}
	w := u.w
	seed := uint32(1)
	fill := func(n int, f fmtCode, lo, hi float32) (uint64, error) {
		ptr, err := u.alloc(n * fmtSize(f))
		if err != nil {
			return 0, err
		}
		seed++
		return ptr, d.k.lmFill(d.stream, ptr, f, n, seed, lo, hi)
	}
	linear := func(f precision.Format, n, k int) (lmLin, error) {
		l := lmLin{f: f, n: n, k: k}
		a := float32(math.Sqrt(3 / float64(k)))
		var err error
		switch f {
		case precision.BF16:
			l.w, err = fill(n*k, fmtBF16, -a, a)
		case precision.FP8:
			if l.fp8F32 = !fp8Aligned(n, k); l.fp8F32 {
				return l, fmt.Errorf("fp8 %d×%d is not a multiple of 16", n, k)
			}
			if l.w, err = fill(n*k, fmtE4M3, -448, 448); err == nil {
				l.ws, err = fill(n, fmtF32, a/448, a/448)
			}
		case precision.FP4:
			kp := precision.PaddedCols(k, precision.NVFP4Block)
			l.fp4Tiled = fp4Tileable(n, k) && !d.fp4RowMajor // random codes: either layout holds them
			if l.fp4Data, err = fill(n*kp/2, fmtU8, 0, 0); err == nil {
				if l.fp4Scale, err = fill(n*kp/precision.NVFP4Block, fmtE4M3, 1, 1); err == nil {
					if l.ws, err = fill(n, fmtF32, a/3, a/3); err == nil {
						l.w, err = fill(n*k, fmtBF16, -2, 2)
					}
				}
			}
		default:
			return l, fmt.Errorf("no random weights at %s (bench precisions: bf16, fp8, fp4)", f)
		}
		return l, err
	}
	err := func() error {
		var err error
		w.embedFmt = tableFmt(p)
		if w.embed, err = fill(c.Vocab*c.Hidden, w.embedFmt, -1, 1); err != nil {
			return err
		}
		w.layers = make([]lmLayerW, c.Layers)
		for i := range w.layers {
			l := &w.layers[i]
			if l.attnNorm, err = fill(c.Hidden, fmtF32, 1, 1); err != nil {
				return err
			}
			if l.mlpNorm, err = fill(c.Hidden, fmtF32, 1, 1); err != nil {
				return err
			}
			if c.QKNorm {
				if l.qNorm, err = fill(c.HeadDim, fmtF32, 1, 1); err != nil {
					return err
				}
				if l.kNorm, err = fill(c.HeadDim, fmtF32, 1, 1); err != nil {
					return err
				}
			}
			for _, s := range []struct {
				l    *lmLin
				n, k int
			}{{&l.qkv, c.QDim() + 2*c.KVDim(), c.Hidden}, {&l.o, c.Hidden, c.QDim()}, {&l.gu, 2 * c.Intermediate, c.Hidden}, {&l.down, c.Hidden, c.Intermediate}} {
				if *s.l, err = linear(p, s.n, s.k); err != nil {
					return err
				}
			}
			if c.QKVBias {
				if l.qkv.bias, err = fill(l.qkv.n, fmtF32, -0.1, 0.1); err != nil {
					return err
				}
			}
		}
		if w.norm, err = fill(c.Hidden, fmtF32, 1, 1); err != nil {
			return err
		}
		if w.head, err = linear(kernels.LMHeadFormat(p), c.Vocab, c.Hidden); err != nil {
			return err
		}
		if w.invFreq, err = u.alloc(4 * c.HeadDim / 2); err != nil {
			return err
		}
		if err := cuUpload(w.invFreq, f32Bytes(c.InvFreq32())); err != nil {
			return err
		}
		return d.stream.sync()
	}()
	if err != nil {
		d.freeLMWeights(w)
		return err
	}
	d.lm.weights[lmKey{m, p}] = w
	d.lmPreload(c, p)
	return nil
}

// SynthLM gives m, a model without weights (its Config only), random
// weights at p on the device, as BenchLM does, so that Step runs it: for
// benchmarks of what drives Step (the engine) on a real model's shapes.
// EvictLM frees them.
func (b *Backend) SynthLM(ctx context.Context, m *lm.Model, p precision.Format) error {
	if err := lmSupported(m); err != nil {
		return err
	}
	if !b.Supports(p) {
		return fmt.Errorf("cuda: %w: %q on %s", kernels.ErrUnsupported, p, b.caps.Device)
	}
	return b.do(ctx, func(d *devState) error { return d.lmSynthWeights(m, p) })
}
