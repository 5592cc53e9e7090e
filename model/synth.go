package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gearbox-inference/gearbox/precision"
)

// maxSynthParams bounds the size of a synthesised model (1 GiB of float32).
const maxSynthParams = 1 << 28

// SynthConfig describes a model for Synth to generate. The zero value of
// each optional field selects its default.
type SynthConfig struct {
	// Name names the model; required, see ValidName.
	Name string
	// Dims are the input width followed by the output width of each linear
	// layer, e.g. 64,256,256,10 for three linear layers: at least two
	// values, each 1 to MaxFeatures.
	Dims []int
	// Act is the activation after each linear layer but the last: GELU
	// (default), ReLU, SiLU or Tanh.
	Act Op
	// Seed seeds the generator: the same config gives the same model, bit
	// for bit, and the same Digest.
	Seed int64
	// Norm inserts a layernorm after each hidden activation (default off).
	Norm bool
	// Softmax appends a softmax after the last linear layer (default off).
	Softmax bool
	// DType is how the weights are stored: DTypeF32 (default), DTypeF16 or
	// DTypeBF16. The generated values are rounded to it, so the Model holds
	// exactly what Save writes.
	DType string
	// MaxError is the model's quality target: DefaultMaxError if 0,
	// otherwise in (0, 1].
	MaxError float64
}

// validate checks c and returns it with its defaults filled in.
func (c SynthConfig) validate() (SynthConfig, error) {
	if c.Act == "" {
		c.Act = GELU
	}
	if c.DType == "" {
		c.DType = DTypeF32
	}
	if c.MaxError == 0 {
		c.MaxError = DefaultMaxError
	}
	switch {
	case !ValidName(c.Name):
		return c, fmt.Errorf("%w: name %q must be 1 to 64 of a-z, A-Z, 0-9, _ and -", ErrInvalidConfig, c.Name)
	case len(c.Dims) < 2:
		return c, fmt.Errorf("%w: dims %v: want the input width and at least one layer width", ErrInvalidConfig, c.Dims)
	case !slices.Contains([]Op{GELU, ReLU, SiLU, Tanh}, c.Act):
		return c, fmt.Errorf("%w: act %q: want gelu, relu, silu or tanh", ErrInvalidConfig, c.Act)
	case DTypeSize(c.DType) == 0:
		return c, fmt.Errorf("%w: dtype %q: want F32, F16 or BF16", ErrInvalidConfig, c.DType)
	case !(c.MaxError > 0 && c.MaxError <= 1):
		return c, fmt.Errorf("%w: max error %v must be in (0, 1]", ErrInvalidConfig, c.MaxError)
	}
	params := 0
	for i, d := range c.Dims {
		if d <= 0 || d > MaxFeatures {
			return c, fmt.Errorf("%w: dims[%d] = %d must be 1 to %d", ErrInvalidConfig, i, d, MaxFeatures)
		}
		if i > 0 {
			params += c.Dims[i-1]*d + d
		}
		if params > maxSynthParams {
			return c, fmt.Errorf("%w: dims %v make over %d parameters", ErrInvalidConfig, c.Dims, maxSynthParams)
		}
	}
	return c, nil
}

// Synth generates a model with realistic weights: a stack of linear layers
// (weights drawn from N(0, 1/in), Kaiming-like; biases from N(0, 0.02²)),
// with c.Act between them and nothing after the last. In every linear layer
// about 1% of the input columns (at least one) are scaled by 10 to 30, the
// outlier channels of real models that make low precisions lose accuracy.
// Layernorm weights, where c.Norm asks for them, are 1 + N(0, 0.05²) with
// biases N(0, 0.02²).
//
// Tensors are named l<i>.weight and l<i>.bias for the i-th linear layer and
// ln<i>.weight and ln<i>.bias for the layernorm after it. The model has
// version "1", the default precision policy, and the Digest of the files
// Save would write. Errors wrap ErrInvalidConfig.
func Synth(c SynthConfig) (*Model, error) {
	c, err := c.validate()
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(uint64(c.Seed), 0x6765617262_6f78)) // "gearbox"
	normal := func(t *Tensor, mean, std float64) {
		for i := range t.Data {
			t.Data[i] = RoundToDType(float32(mean+std*r.NormFloat64()), c.DType)
		}
	}
	tensor := func(name string, shape ...int) *Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return &Tensor{Name: name, DType: c.DType, Shape: shape, Data: make([]float32, n)}
	}

	m := &Model{
		Name:          c.Name,
		Version:       "1",
		InputFeatures: c.Dims[0],
		Quality:       Quality{MaxError: c.MaxError},
		Precision:     PrecisionConfig{Initial: precision.FP32, Ladder: slices.Clone(precision.DefaultLadder)},
	}
	last := len(c.Dims) - 2
	for i := 0; i <= last; i++ {
		in, out := c.Dims[i], c.Dims[i+1]
		w := tensor(fmt.Sprintf("l%d.weight", i), out, in)
		normal(w, 0, 1/math.Sqrt(float64(in)))
		outliers := max(1, int(math.Round(float64(in)/100)))
		for _, col := range r.Perm(in)[:outliers] {
			scale := float32(10 + 20*r.Float64())
			for row := range out {
				w.Data[row*in+col] = RoundToDType(w.Data[row*in+col]*scale, c.DType)
			}
		}
		b := tensor(fmt.Sprintf("l%d.bias", i), out)
		normal(b, 0, 0.02)
		m.Layers = append(m.Layers, Layer{Op: Linear, In: in, Out: out, Weight: w, Bias: b})
		if i == last {
			break
		}
		m.Layers = append(m.Layers, Layer{Op: c.Act, In: out, Out: out})
		if c.Norm {
			lw, lb := tensor(fmt.Sprintf("ln%d.weight", i), out), tensor(fmt.Sprintf("ln%d.bias", i), out)
			normal(lw, 1, 0.05)
			normal(lb, 0, 0.02)
			m.Layers = append(m.Layers, Layer{Op: LayerNorm, In: out, Out: out, Weight: lw, Bias: lb, Eps: DefaultLayerNormEps})
		}
	}
	out := c.Dims[len(c.Dims)-1]
	if c.Softmax {
		m.Layers = append(m.Layers, Layer{Op: Softmax, In: out, Out: out})
	}
	m.OutputFeatures = out

	if _, _, m.Digest, err = encode(m); err != nil {
		return nil, err // a bug: the model is valid by construction
	}
	return m, nil
}
