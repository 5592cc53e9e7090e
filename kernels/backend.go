// Package kernels defines the Backend a worker runs forward passes on, and a
// registry through which backends make themselves available. A backend
// that runs causal language models also implements LM, found by type
// assertion.
//
// Backends register in init, like database/sql drivers, and only package
// main blank-imports them: kernels/cpu (pure Go, always present) and, later,
// kernels/cuda.
package kernels

import (
	"context"
	"errors"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// ErrUnsupported is returned (wrapped) by Forward when the backend cannot run
// the requested precision.
var ErrUnsupported = errors.New("precision not supported by backend")

// Backend runs forward passes of loaded models.
//
// Forward computes rows of output for rows of input, both row-major float32:
// in has rows*m.InputFeatures values, the result rows*m.OutputFeatures. It
// runs exactly at precision p or fails with ErrUnsupported; it never
// substitutes another precision. A backend may cache per-model state (such as
// weights converted or uploaded for p) keyed by the *model.Model; it must be
// safe to call from several goroutines, and honour ctx.
type Backend interface {
	// Name identifies the device, e.g. "cpu" or "cuda:0".
	Name() string
	// Supports reports whether Forward can run at p.
	Supports(p precision.Format) bool
	Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error)
	Close() error
}
