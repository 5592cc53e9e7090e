package cpu

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func init() {
	kernels.Register("cpu", open)
}

// open is the kernels.Opener for the kind "cpu": it accepts the spec "cpu"
// alone, since there is one host CPU and no device index to choose.
func open(spec string) (kernels.Backend, error) {
	if spec != "cpu" {
		return nil, fmt.Errorf("cpu: device spec %q not supported: the CPU backend takes the spec \"cpu\" only", spec)
	}
	return New(Config{})
}

// Backend runs forward passes on the host CPU. It is safe for concurrent use
// by several goroutines. Its only per-model state is the weights it has
// converted for each precision (see Evict and EvictLM).
type Backend struct {
	threads   int
	fp8Margin int
	scratch   sync.Pool // of *scratch
	cache     sync.Map  // weightKey or lmKey → *weightSet

	// quantizations counts weight sets built, for tests.
	quantizations atomic.Int64
}

var (
	_ kernels.Backend    = (*Backend)(nil)
	_ kernels.Referencer = (*Backend)(nil)
)

// New returns a Backend configured by cfg. It fails with an error wrapping
// ErrInvalidConfig when a field is out of range.
func New(cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Backend{threads: cfg.Threads, fp8Margin: cfg.FP8Margin, scratch: sync.Pool{New: scratchNew}}, nil
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Threads returns how many goroutines a forward pass uses.
func (b *Backend) Threads() int { return b.threads }

// Supports reports whether Forward can run at p: every concrete format
// (precision.All), fp32 natively and the others emulated. Auto and the empty
// format are not concrete and are not supported.
func (b *Backend) Supports(p precision.Format) bool { return p.Valid() }

// CachedWeights is the number of converted weight sets the backend holds:
// one per tensor model and precision other than fp32 (which runs the
// model's own weights), and one per language model and precision, run
// since the model was last evicted. Each costs 4 bytes per weight.
func (b *Backend) CachedWeights() int {
	n := 0
	b.cache.Range(func(any, any) bool { n++; return true })
	return n
}

// Capabilities returns precision.CPUCapabilities(): fp32 native, every
// other format emulated.
func (b *Backend) Capabilities() precision.Capabilities { return precision.CPUCapabilities() }

// FP8Margin returns the margin of the fp8 activation scales.
func (b *Backend) FP8Margin() int { return b.fp8Margin }

// Forward runs m on rows rows of in (rows × m.InputFeatures values,
// row-major) at precision p and returns a new slice of rows ×
// m.OutputFeatures values. It fails with an error wrapping
// kernels.ErrUnsupported when p is not supported, with a plain error when in
// has the wrong length or m is malformed, and with ctx.Err() when ctx ends
// before the pass does (it checks between layers). in is not modified.
//
// At precisions other than fp32 the linear layers are emulated (see the
// package documentation): the first Forward of m at p converts m's linear
// weights, and later ones reuse them.
func (b *Backend) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	if !b.Supports(p) {
		return nil, fmt.Errorf("cpu: %w: %q", kernels.ErrUnsupported, p)
	}
	if err := kernels.CheckForward(m, len(in), rows); err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ws [][]float32
	if p != precision.FP32 && rows > 0 {
		var err error
		if ws, err = b.weights(m, p); err != nil {
			return nil, err
		}
	}
	return b.forward(ctx, m, p, ws, in, rows)
}

// Close releases nothing: a Backend holds no resources beyond pooled
// scratch memory, and stays usable after Close.
func (b *Backend) Close() error { return nil }

// Reference runs m on rows rows of in in float64 (the package's Reference):
// the quality loop's yardstick on the CPU. ctx is checked before the pass.
func (b *Backend) Reference(ctx context.Context, m *model.Model, in []float32, rows int) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	x := make([]float64, len(in))
	for i, v := range in {
		x[i] = float64(v)
	}
	return Reference(m, x, rows)
}
