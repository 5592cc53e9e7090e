package kernels

import (
	"context"

	"github.com/gearbox-inference/gearbox/model"
)

// Referencer is the optional ability of a Backend to compute a forward
// pass in float64, found by type assertion:
//
//	rb, ok := backend.(kernels.Referencer)
//
// The quality loop measures served outputs against it; without it, it uses
// the backend's own fp32 pass. Reference takes the same model and input as
// Forward (rows × m.InputFeatures values, not modified) and returns rows ×
// m.OutputFeatures values, computed in float64 from the model's float32
// weights, with the ops' exact definitions (the CPU backend's Reference is
// the executable specification). It honours ctx and fails as Forward does
// for a malformed model or input; it caches nothing.
type Referencer interface {
	Reference(ctx context.Context, m *model.Model, in []float32, rows int) ([]float64, error)
}
