//go:build cgo

package cuda

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func init() {
	kernels.Register("cuda", open)
	kernels.RegisterCounter("cuda", DeviceCount)
}

// DeviceCount returns how many CUDA devices the process can see (after
// CUDA_VISIBLE_DEVICES): cuda:0 to cuda:N-1. It fails with an error
// wrapping ErrUnavailable when the libraries or the driver are missing.
func DeviceCount() (int, error) {
	if err := loadLibraries(); err != nil {
		return 0, err
	}
	if err := cuInit(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	n, err := cuDeviceCount()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return n, nil
}

// open is the kernels.Opener for "cuda" and "cuda:N".
func open(spec string) (kernels.Backend, error) {
	n, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}
	return New(Config{Device: n})
}

// parseSpec returns N of "cuda:N" ("cuda" alone is device 0).
func parseSpec(spec string) (int, error) {
	kind, idx, found := strings.Cut(spec, ":")
	if kind != "cuda" {
		return 0, fmt.Errorf("cuda: device spec %q: want cuda or cuda:N", spec)
	}
	if !found {
		return 0, nil
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("cuda: device spec %q: want cuda:N with N a device index", spec)
	}
	return n, nil
}

// Backend runs forward passes on one CUDA device. One goroutine, locked to
// its OS thread, owns the device: it holds the primary context current and
// runs every piece of device work from a queue, in order, on one
// non-blocking stream. A tensor model's Forward keeps only the queueing
// there: its copies to and from pinned memory and its wait for the GPU run
// on the caller's goroutine, with up to Config.InFlight batches of a batch
// size in flight (slots.go). Backend's methods are safe for concurrent use.
type Backend struct {
	cfg  Config
	log  zerolog.Logger
	name string
	info DeviceInfo
	caps precision.Capabilities

	work      chan func()
	closeOnce sync.Once
	stopped   chan struct{}
	mu        sync.RWMutex // guards closed against sends on work
	closed    bool

	slots  *slots     // the tensor path's batches in flight
	stages stageStats // TimeStages's sums (stages.go)
	cuctx  cuContext  // the primary context, for waits on callers' threads
	d      *devState  // touched only on the device goroutine
}

var _ kernels.Backend = (*Backend)(nil)

// New opens device cfg.Device. It fails with an error wrapping
// ErrUnavailable when the libraries or the driver are missing or the driver
// reports no device, ErrNoDevice when the device index is out of range, and
// ErrInvalidConfig for a bad cfg; kernel compilation errors wrap ErrCompile.
func New(cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	count, err := DeviceCount()
	if err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: the driver reports no CUDA device", ErrUnavailable)
	}
	if cfg.Device >= count {
		return nil, fmt.Errorf("%w: cuda:%d (the driver reports %d device(s))", ErrNoDevice, cfg.Device, count)
	}
	b := &Backend{
		cfg:     cfg,
		name:    fmt.Sprintf("cuda:%d", cfg.Device),
		work:    make(chan func()),
		stopped: make(chan struct{}),
		slots:   newSlots(cfg.InFlight),
	}
	if cfg.Logger != nil {
		b.log = *cfg.Logger
	} else {
		b.log = zlog.Logger
	}
	ready := make(chan error, 1)
	go b.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	b.caps = precision.CUDACapabilities(b.info.Major, b.info.Minor)
	if b.caps.Support(precision.FP4) == precision.Native {
		// The fp4 path here is weight-only (NVFP4 weights, bf16 math), even
		// where the hardware has fp4 tensor cores.
		b.caps = b.caps.With(precision.FP4, precision.Emulated)
	}
	b.log.Info().Str("device", b.name).Str("gpu", b.info.Name).Str("uuid", b.info.UUID).
		Str("cc", fmt.Sprintf("%d.%d", b.info.Major, b.info.Minor)).Int("sms", b.info.SMs).
		Uint64("memory_mib", b.info.TotalMemory>>20).Int("cublaslt", b.info.CublasLt).
		Int("driver", b.info.DriverVersion).Str("nvrtc", b.info.NVRTCVersion).
		Str("libcuda", b.info.Libraries[libCUDA]).Str("libnvrtc", b.info.Libraries[libNVRTC]).
		Str("libcublaslt", b.info.Libraries[libCublasLt]).Bool("pdl", b.info.PDL).
		Bool("prefill_attention", b.info.PrefillAttention).
		Str("formats", fmt.Sprint(b.caps.Supported())).Msg("cuda device opened")
	return b, nil
}

// loop is the device goroutine: it sets the device up, reports on ready,
// then runs queued work until the queue closes, and tears the device down.
func (b *Backend) loop(ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(b.stopped)
	d, info, err := openDevice(b.cfg)
	if err != nil {
		ready <- err
		return
	}
	d.slots = b.slots
	d.log = b.log.With().Str("device", b.name).Logger()
	d.k.log = d.log
	b.d, b.info, b.cuctx = d, info, d.ctx
	ready <- nil
	for fn := range b.work {
		fn()
	}
	d.close()
}

// do runs fn on the device goroutine and returns its error. It returns
// ctx.Err() if ctx ends before fn starts, and ErrClosed after Close.
func (b *Backend) do(ctx context.Context, fn func(d *devState) error) error {
	done := make(chan error, 1)
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	select {
	case b.work <- func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("cuda: internal error on the device goroutine: %v", r)
			}
		}()
		done <- fn(b.d)
	}:
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	b.mu.RUnlock()
	return <-done
}

// Name returns "cuda:N".
func (b *Backend) Name() string { return b.name }

// Info describes the device.
func (b *Backend) Info() DeviceInfo { return b.info }

// UUID is the device's UUID, "GPU-…" as nvidia-smi prints it (Info().UUID),
// or "" when the driver cannot say.
func (b *Backend) UUID() string { return b.info.UUID }

// Capabilities returns precision.CUDACapabilities of the device's compute
// capability, with fp4 as Emulated (weight-only) everywhere it is runnable.
func (b *Backend) Capabilities() precision.Capabilities { return b.caps }

// Supports reports whether Forward can run at p on this device.
func (b *Backend) Supports(p precision.Format) bool {
	return b.caps.Support(p) != precision.Unavailable
}

// Forward runs m on rows rows of in at precision p and returns rows ×
// m.OutputFeatures values (see kernels.Backend). The first Forward of m at
// p uploads m's weights in p's layout; later ones reuse them until Evict or
// Close. A batch that runs out of device memory is split in halves and
// retried (logged). It fails with an error wrapping kernels.ErrUnsupported
// for a precision the device cannot run, ErrClosed after Close, ctx.Err()
// when ctx ends first (checked between layers).
func (b *Backend) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	if err := b.checkForward(m, p, in, rows); err != nil {
		return nil, err
	}
	out := make([]float32, rows*m.OutputFeatures)
	if err := b.runForward(ctx, m, p, in, rows, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ForwardInto is Forward with the output written to out (see
// kernels.IntoForwarder).
func (b *Backend) ForwardInto(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int, out []float32) error {
	if err := b.checkForward(m, p, in, rows); err != nil {
		return err
	}
	n := rows * m.OutputFeatures
	if len(out) < n {
		return fmt.Errorf("cuda: output of %d values for %d rows of %d outputs, want at least %d", len(out), rows, m.OutputFeatures, n)
	}
	return b.runForward(ctx, m, p, in, rows, out[:n])
}

// checkForward is Forward's check of its arguments, before anything is
// allocated for them.
func (b *Backend) checkForward(m *model.Model, p precision.Format, in []float32, rows int) error {
	if !b.Supports(p) {
		return fmt.Errorf("cuda: %w: %q on %s", kernels.ErrUnsupported, p, b.caps.Device)
	}
	if err := kernels.CheckForward(m, len(in), rows); err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	return nil
}

// runForward runs checked arguments into out, timed when stage timing is
// on.
func (b *Backend) runForward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int, out []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	clk := b.stages.clock()
	err := b.forward(ctx, m, p, in, out, rows, clk)
	clk.done()
	return err
}

// Evict frees the device copies of m's weights at every precision and the
// CUDA graphs captured from them (see kernels.Backend). It waits for the
// device work queued before it; after Close it does nothing.
func (b *Backend) Evict(m *model.Model) {
	_ = b.do(context.Background(), func(d *devState) error {
		d.evict(m)
		return nil
	})
}

// Close frees everything on the device and stops the device goroutine.
// Forward then fails with ErrClosed; Close waits for the batches in flight
// to finish first (their callers get their results or ErrClosed). Close is
// idempotent.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.slots.close()
		b.mu.Lock() // no do is sending on work
		close(b.work)
		b.mu.Unlock()
		<-b.stopped
	})
	return nil
}
