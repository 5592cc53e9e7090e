package cuda

import (
	"errors"
	"fmt"

	"github.com/gearbox-inference/gearbox/model"
)

// checkModel reports whether m is well formed enough to run: the layer
// widths chain from InputFeatures to OutputFeatures and every tensor has
// the length its layer needs (the loader validates fully; this guard turns
// a malformed hand-built model into an error).
func checkModel(m *model.Model) error {
	if m == nil {
		return errors.New("cuda: nil model")
	}
	if m.InputFeatures <= 0 || m.OutputFeatures <= 0 {
		return fmt.Errorf("cuda: model %q: InputFeatures = %d, OutputFeatures = %d, want both > 0",
			m.Name, m.InputFeatures, m.OutputFeatures)
	}
	width := m.InputFeatures
	for i, l := range m.Layers {
		if err := checkLayer(l, width); err != nil {
			return fmt.Errorf("cuda: model %q: layer %d (%s): %w", m.Name, i, l.Op, err)
		}
		width = l.Out
	}
	if width != m.OutputFeatures {
		return fmt.Errorf("cuda: model %q: last layer width %d, OutputFeatures %d", m.Name, width, m.OutputFeatures)
	}
	return nil
}

func checkLayer(l model.Layer, width int) error {
	if l.In != width || l.In <= 0 || l.Out <= 0 {
		return fmt.Errorf("In = %d, Out = %d, previous width %d", l.In, l.Out, width)
	}
	n := func(t *model.Tensor, want int, required bool, what string) error {
		if t == nil {
			if required {
				return fmt.Errorf("missing %s", what)
			}
			return nil
		}
		if len(t.Data) != want {
			return fmt.Errorf("%s has %d values, want %d", what, len(t.Data), want)
		}
		return nil
	}
	switch l.Op {
	case model.Linear:
		if err := n(l.Weight, l.Out*l.In, true, "weight"); err != nil {
			return err
		}
		return n(l.Bias, l.Out, false, "bias")
	case model.LayerNorm, model.RMSNorm, model.ReLU, model.GELU, model.SiLU, model.Tanh, model.Softmax:
		if l.Out != l.In {
			return fmt.Errorf("Out = %d, want In = %d", l.Out, l.In)
		}
		if err := n(l.Weight, l.In, false, "weight"); err != nil {
			return err
		}
		return n(l.Bias, l.In, false, "bias")
	}
	return fmt.Errorf("unknown op %q", l.Op)
}

// checkInput checks that an input of n values holds rows rows of width
// features each.
func checkInput(n, rows, width int) error {
	if rows < 0 || (rows == 0 && n != 0) || (rows > 0 && (n%rows != 0 || n/rows != width)) {
		return fmt.Errorf("cuda: input has %d values, want rows × InputFeatures = %d × %d", n, rows, width)
	}
	return nil
}
