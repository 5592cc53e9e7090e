//go:build cgo

package cuda

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// BenchLinear times linear layers without bias: for each shape, each path
// and each batch size, y = x·Wᵀ with W random in ±1/√K and x uniform in
// (−1, 1).
func (b *Backend) BenchLinear(ctx context.Context, cfg LinearBench) ([]LinearResult, error) {
	if cfg.Iters <= 0 {
		cfg.Iters = 50
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = 5
	}
	paths := cfg.Paths
	if paths == nil {
		paths = BenchPaths
	}
	for _, p := range paths {
		if !slices.Contains(BenchPaths, p) {
			return nil, fmt.Errorf("cuda: bench: unknown path %q (have %v)", p, BenchPaths)
		}
	}
	var out []LinearResult
	for _, s := range cfg.Shapes {
		n, k := s[0], s[1]
		r := rand.New(rand.NewPCG(uint64(n), uint64(k)))
		bound := float32(1 / float64(k))
		w := make([]float32, n*k)
		for i := range w {
			w[i] = (2*r.Float32() - 1) * bound * 30
		}
		l := &model.Layer{Op: model.Linear, In: k, Out: n, Weight: &model.Tensor{Name: "w", Data: w}}
		for _, path := range paths {
			var res []LinearResult
			err := b.do(ctx, func(d *devState) error {
				var err error
				res, err = d.benchPath(ctx, l, path, cfg)
				return err
			})
			if err != nil {
				return out, fmt.Errorf("cuda: bench %s %d×%d: %w", path, n, k, err)
			}
			for _, x := range res {
				if cfg.Progress != nil {
					cfg.Progress(x)
				}
			}
			out = append(out, res...)
		}
	}
	return out, nil
}

// benchPath times one path on one weight for every batch size.
func (d *devState) benchPath(ctx context.Context, l *model.Layer, path string, cfg LinearBench) ([]LinearResult, error) {
	var p precision.Format
	perTensor, fp4Small, fp4Wide, fp4WideMin := false, d.fp4SmallM, d.fp4WideM, d.fp4WideMinW
	d.benchCand = cfg.Cand
	defer func() { d.fp4SmallM, d.fp4WideM, d.fp4WideMinW, d.benchCand = fp4Small, fp4Wide, fp4WideMin, 0 }()
	switch path {
	case "fp8-tensor":
		p, perTensor = precision.FP8, true
	case "fp4-kernel", "fp4-wide":
		p, d.fp4SmallM, d.fp4WideM = precision.FP4, 1<<30, -1 // the small-batch kernel
		if path == "fp4-wide" {
			d.fp4SmallM, d.fp4WideM, d.fp4WideMinW = -1, 1<<30, -1
		}
		if err := d.k.load(modFP4); err != nil {
			return nil, err
		}
	case "fp4-bf16":
		p, d.fp4SmallM, d.fp4WideM = precision.FP4, -1, -1
	default:
		var err error
		if p, err = precision.Parse(path); err != nil {
			return nil, err
		}
	}
	n, k := l.Out, l.In
	w := &devWeights{layers: make([]devLayer, 1)}
	dl := &w.layers[0]
	key := weightKey{m: &model.Model{Name: "bench"}, p: p}
	d.weights[key] = w
	defer d.freeWeights(key)
	if err := d.uploadLayer(w, dl, l, p, perTensor); err != nil {
		return nil, err
	}
	maxM := slices.Max(cfg.Ms)
	var bufs []uint64
	alloc := func(bytes int) (uint64, error) {
		p, err := cuMalloc(uint64(bytes))
		if err == nil {
			bufs = append(bufs, p)
		}
		return p, err
	}
	defer func() {
		_ = d.stream.sync()
		for _, p := range bufs {
			_ = cuFree(p)
		}
	}()
	const flushBytes = 256 << 20 // > 5× the H100's 50 MB L2
	x, err := alloc(4 * maxM * k)
	if err != nil {
		return nil, err
	}
	conv, err := alloc(4 * maxM * k)
	if err != nil {
		return nil, err
	}
	y, err := alloc(4 * maxM * n)
	if err != nil {
		return nil, err
	}
	flush, err := alloc(flushBytes)
	if err != nil {
		return nil, err
	}
	var ev [3]cuEvent
	for i := range ev {
		if ev[i], err = cuEventCreate(); err != nil {
			return nil, err
		}
		defer ev[i].destroy()
	}
	var out []LinearResult
	seed := uint32(1)
	for _, m := range cfg.Ms {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var layer, gemm []float64
		mode := ""
		for it := range cfg.Warmup + cfg.Iters {
			seed++
			if err := d.stream.memset32(flush, seed, flushBytes/4); err != nil {
				return nil, err
			}
			if err := d.k.rand(d.stream, x, m*k, seed, 1); err != nil {
				return nil, err
			}
			if err := d.k.spin(d.stream, 200_000); err != nil {
				return nil, err
			}
			if err := ev[0].record(d.stream); err != nil {
				return nil, err
			}
			var md string
			if md, err = d.benchLinear(dl, p, x, y, conv, m, ev[1]); err != nil {
				return nil, err
			}
			mode = md
			if err := ev[2].record(d.stream); err != nil {
				return nil, err
			}
			if err := ev[2].sync(); err != nil {
				return nil, err
			}
			t0, err := ev[0].elapsed(ev[2])
			if err != nil {
				return nil, err
			}
			t1, err := ev[1].elapsed(ev[2])
			if err != nil {
				return nil, err
			}
			if it >= cfg.Warmup {
				layer = append(layer, 1000*float64(t0))
				gemm = append(gemm, 1000*float64(t1))
			}
		}
		slices.Sort(layer)
		slices.Sort(gemm)
		res := LinearResult{Path: path, M: m, N: n, K: k, LayerUS: layer[len(layer)/2], GemmUS: gemm[len(gemm)/2], MinUS: layer[0], Mode: mode}
		res.TFLOPs = 2 * float64(m) * float64(n) * float64(k) / res.LayerUS / 1e6
		res.WeightGB = float64(benchWeightBytes(path, mode, n, k)) / res.LayerUS / 1e3
		out = append(out, res)
	}
	return out, nil
}

// benchLinear is linear with an event recorded between the input's
// conversion and the GEMM; it returns how the GEMM ran.
func (d *devState) benchLinear(dl *devLayer, p precision.Format, x, y, conv uint64, rows int, mid cuEvent) (string, error) {
	d.benchMid = &mid
	defer func() { d.benchMid = nil }()
	if err := d.linear(dl, p, x, y, conv, rows, false); err != nil {
		return "", err
	}
	if p == precision.FP4 && d.useFP4Kernel(rows, dl.out, dl.in, dl.fp4Tiled) {
		if !d.fp4Small(rows) {
			return "nvfp4 wide kernel", nil
		}
		return "nvfp4 kernel", nil
	}
	g := d.plans[planKey{p: p, rows: rows, n: dl.out, k: dl.in, bias: dl.bias != 0, perTensor: dl.perTensor, fp8F32: dl.fp8F32, cand: d.benchCand}]
	if g == nil {
		return "", nil
	}
	mode := [...]string{"cublasLt, fused epilogue", "cublasLt scales + bias kernel", "cublasLt + epilogue kernel"}[g.mode]
	// The algorithm's configuration (CUBLASLT_ALGO_CONFIG_*), to tell the
	// heuristic's candidates apart.
	if c, _, err := g.lt.algo(); err == nil {
		mode += fmt.Sprintf(" (algo %d, tile %d, split-K %d, stages %d, cluster %d)", c[0], c[1], c[2], c[6], c[8])
	}
	return mode, nil
}

// markMid records the benchmark's mid-point event, if one is set: called by
// linear between the input conversion and the GEMM.
func (d *devState) markMid() error {
	if d.benchMid == nil {
		return nil
	}
	return d.benchMid.record(d.stream)
}

// benchWeightBytes is the weight bytes a path reads.
func benchWeightBytes(path, mode string, n, k int) int64 {
	switch path {
	case "fp4", "fp4-kernel", "fp4-wide", "fp4-bf16":
		if strings.HasPrefix(mode, "nvfp4 ") {
			return precision.NVFP4Bytes(n, k)
		}
		return precision.WeightBytes(precision.BF16, n, k)
	case "fp8", "fp8-tensor":
		return precision.WeightBytes(precision.FP8, n, k)
	}
	p, _ := precision.Parse(path)
	return precision.WeightBytes(p, n, k)
}
