package kerneltest

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
)

// Case is a model of the suite with an input for it.
type Case struct {
	Name  string
	Model *model.Model
	Rows  int
	In    []float32 // Rows × Model.InputFeatures values
}

// Cases returns the suite's models, built once per test binary and shared:
// callers must not modify them or their inputs. They are:
//
//	mlp-512-2048-512  a gelu MLP (model.Synth), 48 rows, input N(0, 1) with
//	                  four outlier columns ×10
//	every-op          every op, widths multiples of 16 (fp8 tensor cores)
//	odd-widths        widths no fp8 tensor-core kernel takes, norms without
//	                  weight or bias
//	one-row           one row (GEMV shapes)
//	single-linear     one linear layer, 64 rows
func Cases(tb testing.TB) []Case {
	tb.Helper()
	cs, err := cases()
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

var cases = sync.OnceValues(func() ([]Case, error) {
	r := rand.New(rand.NewPCG(4, 2))
	mlp, err := model.Synth(model.SynthConfig{Name: "mlp", Dims: []int{512, 2048, 512}, Seed: 1})
	if err != nil {
		return nil, err
	}
	const rows = 48
	in := RandInput(r, rows*512, 0, 1)
	for row := range rows {
		for _, c := range []int{3, 77, 200, 411} {
			in[row*512+c] *= 10
		}
	}
	ops := Build(r, 64, Lin(128), Act(model.ReLU), LinNoBias(128), Act(model.SiLU), Act(model.LayerNorm),
		Lin(64), Act(model.Tanh), Act(model.RMSNorm), Lin(96), Act(model.GELU), Lin(32), Act(model.Softmax))
	odd := Build(r, 40, Lin(24), PlainNorm(model.RMSNorm), Act(model.ReLU), Lin(10), PlainNorm(model.LayerNorm), Lin(7))
	one := Build(r, 256, Lin(256), Act(model.GELU), Lin(128))
	single := Build(r, 1024, Lin(512))
	return []Case{
		{"mlp-512-2048-512", mlp, rows, in},
		{"every-op", ops, 33, RandInput(r, 33*64, 0.1, 1)},
		{"odd-widths", odd, 5, RandInput(r, 5*40, 0, 2)},
		{"one-row", one, 1, RandInput(r, 256, 0, 1)},
		{"single-linear", single, 64, RandInput(r, 64*1024, 0, 1)},
	}, nil
})
