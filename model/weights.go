package model

import "github.com/gearbox-inference/gearbox/precision"

// Tensors returns the model's weight tensors in layer order, each layer's
// weight before its bias. Every tensor appears once: the manifest may not
// name a tensor twice.
func (m *Model) Tensors() []*Tensor {
	var ts []*Tensor
	for i := range m.Layers {
		if w := m.Layers[i].Weight; w != nil {
			ts = append(ts, w)
		}
		if b := m.Layers[i].Bias; b != nil {
			ts = append(ts, b)
		}
	}
	return ts
}

// Params is the number of weights (elements of all tensors) of the model.
func (m *Model) Params() int64 {
	var n int64
	for _, t := range m.Tensors() {
		n += int64(len(t.Data))
	}
	return n
}

// WeightBytes is the size of the model's weights as stored: each tensor's
// element count times the size of its DType (4 for F32, 2 for F16 and
// BF16). The float32 copies a loaded Model holds take 4 bytes per weight
// whatever the DType; backends that keep weights in a narrower format
// account for that themselves.
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, t := range m.Tensors() {
		n += int64(len(t.Data)) * int64(DTypeSize(storedDType(t)))
	}
	return n
}

// WeightBytesAt is the bytes the model's parameters take when it runs at
// precision p: linear weights in p's storage layout, scales and padding
// included (precision.WeightBytes), everything else (biases, norm
// parameters) as float32. It is 0 for a p that is not a concrete format.
func (m *Model) WeightBytesAt(p precision.Format) int64 {
	if !p.Valid() {
		return 0
	}
	var n int64
	for i := range m.Layers {
		l := &m.Layers[i]
		if l.Op == Linear {
			n += precision.WeightBytes(p, l.Out, l.In)
		} else if l.Weight != nil {
			n += 4 * int64(len(l.Weight.Data))
		}
		if l.Bias != nil {
			n += 4 * int64(len(l.Bias.Data))
		}
	}
	return n
}
