package model

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
