//go:build !cgo

package cuda

import (
	"context"
	"fmt"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func init() {
	kernels.Register("cuda", func(spec string) (kernels.Backend, error) {
		_, err := New(Config{})
		return nil, err
	})
	kernels.RegisterCounter("cuda", DeviceCount)
}

// DeviceCount fails with ErrUnavailable: this build has no cgo.
func DeviceCount() (int, error) {
	_, err := New(Config{})
	return 0, err
}

// Backend is unavailable without cgo: New always fails.
type Backend struct{}

var _ kernels.Backend = (*Backend)(nil)

// New fails with ErrUnavailable: this build has no cgo.
func New(Config) (*Backend, error) {
	return nil, fmt.Errorf("%w: this binary was built without cgo (CGO_ENABLED=0)", ErrUnavailable)
}

// Info is the zero DeviceInfo.
func (b *Backend) Info() DeviceInfo { return DeviceInfo{} }

// UUID is "".
func (b *Backend) UUID() string { return "" }

// BenchLinear fails with ErrUnavailable.
func (b *Backend) BenchLinear(context.Context, LinearBench) ([]LinearResult, error) {
	return nil, ErrUnavailable
}

// BenchLM fails with ErrUnavailable.
func (b *Backend) BenchLM(context.Context, LMBench) ([]LMResult, error) {
	return nil, ErrUnavailable
}

// Close does nothing.
func (b *Backend) Close() error { return nil }

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Supports reports false: nothing runs without cgo.
func (b *Backend) Supports(precision.Format) bool { return false }

// Capabilities reports that nothing runs without cgo.
func (b *Backend) Capabilities() precision.Capabilities {
	return precision.Capabilities{Device: "cuda"}
}

// TimeStages times nothing: it returns the zero StageTimes.
func (b *Backend) TimeStages(bool) kernels.StageTimes { return kernels.StageTimes{} }

// Evict does nothing.
func (b *Backend) Evict(*model.Model) {}

// Forward fails with ErrUnavailable.
func (b *Backend) Forward(context.Context, *model.Model, precision.Format, []float32, int) ([]float32, error) {
	return nil, ErrUnavailable
}

// ForwardInto fails with ErrUnavailable.
func (b *Backend) ForwardInto(context.Context, *model.Model, precision.Format, []float32, int, []float32) error {
	return ErrUnavailable
}
