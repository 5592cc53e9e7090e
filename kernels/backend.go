package kernels

import (
	"context"
	"errors"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// ErrUnsupported is returned (wrapped) by Forward, LM.Step and
// LM.NewKVCache when the backend cannot run the requested precision.
var ErrUnsupported = errors.New("precision not supported by backend")

// Backend runs forward passes of tensor models (package model) on one
// device. Its methods are safe for concurrent use by several goroutines.
//
// A backend may cache per-model state, such as weights converted or
// uploaded for a precision, keyed by the *model.Model; it holds it until
// Evict or Close.
type Backend interface {
	// Name identifies the device in logs and results, e.g. "cpu" or
	// "cuda:0".
	Name() string

	// Capabilities says which precisions Forward runs, and whether natively
	// or emulated. Forward runs exactly the concrete formats it does not
	// report Unavailable, and the answer does not change over the
	// backend's life. A backend runs at least fp32, the top of every
	// precision ladder.
	Capabilities() precision.Capabilities

	// Forward computes rows rows of output for rows rows of input, both
	// row-major float32: in holds rows × m.InputFeatures values and is not
	// modified; the result is a new slice of rows × m.OutputFeatures
	// values (empty for rows 0).
	//
	// It runs exactly at precision p or fails with an error wrapping
	// ErrUnsupported: it never substitutes another precision. A malformed
	// m, or an input of the wrong length, is an error naming the problem
	// (see CheckForward); when ctx ends before the pass does, Forward
	// returns ctx.Err().
	Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error)

	// Evict drops whatever the backend holds for m, at every precision;
	// a later Forward of m builds it again. It is safe to call for a model
	// never run, more than once, and after Close (it then does nothing).
	// Call it once no Forward of m runs or will start: one that does may
	// build m's state again, and that state then stays until the next
	// Evict.
	Evict(m *model.Model)

	// Close releases what the backend holds. Close is idempotent; what
	// Forward does after it is the backend's (the CUDA backend fails with
	// its ErrClosed, the CPU backend, which holds nothing, still runs).
	Close() error
}

// IntoForwarder is a Backend that can also write a forward pass's output
// into a slice of the caller's: a caller that runs batch after batch reuses
// one buffer instead of a fresh allocation (and its first-touch page
// faults) per batch. The CUDA backend implements it.
type IntoForwarder interface {
	// ForwardInto is Forward with the output written to out[:rows ×
	// m.OutputFeatures]; an out shorter than that is an error.
	ForwardInto(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int, out []float32) error
}

// Supports reports whether b runs precision p:
// b.Capabilities().Support(p) is not precision.Unavailable.
func Supports(b Backend, p precision.Format) bool {
	return b.Capabilities().Support(p) != precision.Unavailable
}
