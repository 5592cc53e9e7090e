package kernels

import (
	"errors"
	"fmt"

	"github.com/gearbox-inference/gearbox/model"
)

// CheckForward reports whether a Forward of m on n input values as rows
// rows can run: the model is well formed (checkModel) and the input is
// rows × m.InputFeatures values. Backends call it first and prefix its
// error with their name.
func CheckForward(m *model.Model, n, rows int) error {
	if err := checkModel(m); err != nil {
		return err
	}
	return checkInput(n, rows, m.InputFeatures)
}

// checkModel reports whether m is well formed enough to run: the layer
// widths chain from InputFeatures to OutputFeatures and every tensor has the
// length its layer needs. The model loader validates models fully; this guard
// turns a malformed hand-built model into an error instead of a panic inside
// a worker goroutine.
func checkModel(m *model.Model) error {
	if m == nil {
		return errors.New("nil model")
	}
	if m.InputFeatures <= 0 || m.OutputFeatures <= 0 {
		return fmt.Errorf("model %q: InputFeatures = %d, OutputFeatures = %d, want both > 0",
			m.Name, m.InputFeatures, m.OutputFeatures)
	}
	width := m.InputFeatures
	for i, l := range m.Layers {
		if err := checkLayer(l, width); err != nil {
			return fmt.Errorf("model %q: layer %d (%s): %w", m.Name, i, l.Op, err)
		}
		width = l.Out
	}
	if width != m.OutputFeatures {
		return fmt.Errorf("model %q: last layer width %d, OutputFeatures %d", m.Name, width, m.OutputFeatures)
	}
	return nil
}

// checkLayer checks one layer whose input has width features.
func checkLayer(l model.Layer, width int) error {
	if l.In != width {
		//lint:ignore ST1005 the message starts with the name of the Go field at fault
		return fmt.Errorf("In = %d, previous width %d", l.In, width)
	}
	if l.In <= 0 || l.Out <= 0 {
		//lint:ignore ST1005 the message starts with the name of the Go field at fault
		return fmt.Errorf("In = %d, Out = %d, want both > 0", l.In, l.Out)
	}
	switch l.Op {
	case model.Linear:
		if err := checkTensor("weight", l.Weight, l.Out*l.In, true); err != nil {
			return err
		}
		return checkTensor("bias", l.Bias, l.Out, false)
	case model.LayerNorm, model.RMSNorm:
		if l.Out != l.In {
			//lint:ignore ST1005 the message starts with the name of the Go field at fault
			return fmt.Errorf("Out = %d, want In = %d", l.Out, l.In)
		}
		if err := checkTensor("weight", l.Weight, l.In, false); err != nil {
			return err
		}
		if l.Op == model.LayerNorm {
			if err := checkTensor("bias", l.Bias, l.In, false); err != nil {
				return err
			}
		}
		if !(l.Eps >= 0) {
			return fmt.Errorf("eps = %g, want >= 0", l.Eps)
		}
		return nil
	case model.ReLU, model.GELU, model.SiLU, model.Tanh, model.Softmax:
		if l.Out != l.In {
			//lint:ignore ST1005 the message starts with the name of the Go field at fault
			return fmt.Errorf("Out = %d, want In = %d", l.Out, l.In)
		}
		return nil
	default:
		return fmt.Errorf("unknown op %q", l.Op)
	}
}

// checkTensor checks that t holds n values; a nil t is allowed unless
// required.
func checkTensor(name string, t *model.Tensor, n int, required bool) error {
	if t == nil {
		if required {
			return fmt.Errorf("missing %s", name)
		}
		return nil
	}
	if len(t.Data) != n {
		return fmt.Errorf("%s has %d values, want %d", name, len(t.Data), n)
	}
	return nil
}

// checkInput checks that an input of n values holds rows rows of width
// features each.
func checkInput(n, rows, width int) error {
	if rows < 0 {
		return fmt.Errorf("rows = %d, want >= 0", rows)
	}
	// Compare by division so that a huge rows cannot overflow rows*width.
	if (rows == 0 && n != 0) || (rows > 0 && (n%rows != 0 || n/rows != width)) {
		return fmt.Errorf("input has %d values, want rows × InputFeatures = %d × %d = %d",
			n, rows, width, rows*width)
	}
	return nil
}
