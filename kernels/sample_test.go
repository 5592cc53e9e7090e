package kernels_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
)

// TestSampleUniform checks the counter-based draws against splitmix64's
// published outputs (seed 0: 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
// 0x06c45d188009454f; seed 1234567: 6457827717110365317,
// 3203168211198807973) and that they look uniform.
func TestSampleUniform(t *testing.T) {
	for _, tc := range []struct {
		seed uint64
		pos  int
		bits uint64
	}{
		{0, 0, 0xe220a8397b1dcdaf},
		{0, 1, 0x6e789e6aa1b965f4},
		{0, 2, 0x06c45d188009454f},
		{1234567, 0, 6457827717110365317},
		{1234567, 1, 3203168211198807973},
	} {
		if got, want := kernels.SampleUniform(tc.seed, tc.pos), float64(tc.bits>>11)*0x1p-53; got != want {
			t.Errorf("SampleUniform(%d, %d) = %v; want %v", tc.seed, tc.pos, got, want)
		}
	}
	var sum float64
	const n = 100000
	for pos := range n {
		u := kernels.SampleUniform(7, pos)
		if u < 0 || u >= 1 {
			t.Fatalf("SampleUniform(7, %d) = %v; want [0, 1)", pos, u)
		}
		sum += u
	}
	if mean := sum / n; math.Abs(mean-0.5) > 0.005 {
		t.Errorf("mean of %d draws %v; want 0.5", n, mean)
	}
}

func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		logits []float32
		want   int32
	}{
		{[]float32{1, 3, 2}, 1},
		{[]float32{2, 5, 5, 1}, 1}, // tie: the lowest id
		{[]float32{nan, 0, -1}, 1},
		{[]float32{-1, nan, -2}, 0},
	} {
		if got := kernels.Argmax(tc.logits); got != tc.want {
			t.Errorf("Argmax(%v) = %d; want %d", tc.logits, got, tc.want)
		}
		if got := kernels.Sample(tc.logits, kernels.Sampling{Seed: 3}, 0); got != tc.want {
			t.Errorf("Sample at temperature 0 (%v) = %d; want %d", tc.logits, got, tc.want)
		}
	}
}

// frequencies samples n positions with s and returns each token's share.
func frequencies(logits []float32, s kernels.Sampling, n int) []float64 {
	f := make([]float64, len(logits))
	for pos := range n {
		f[kernels.Sample(logits, s, pos)]++
	}
	for i := range f {
		f[i] /= float64(n)
	}
	return f
}

// softmax is the reference distribution, over the ids kept (nil: all).
func softmax(logits []float32, temp float64, keep []int) []float64 {
	p := make([]float64, len(logits))
	var sum float64
	for i, l := range logits {
		if keep == nil || slices.Contains(keep, i) {
			p[i] = math.Exp(float64(l) / temp)
			sum += p[i]
		}
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

func TestSampleDistribution(t *testing.T) {
	logits := []float32{2, 1.5, 0.7, 0.7, -1, 0.2}
	const n = 40000
	for _, tc := range []struct {
		name string
		s    kernels.Sampling
		want []float64
	}{
		{"temperature 1", kernels.Sampling{Temperature: 1, Seed: 1}, softmax(logits, 1, nil)},
		{"temperature 0.5", kernels.Sampling{Temperature: 0.5, Seed: 2}, softmax(logits, 0.5, nil)},
		{"top-k 3", kernels.Sampling{Temperature: 1, TopK: 3, Seed: 3}, softmax(logits, 1, []int{0, 1, 2})}, // the tie 0.7 keeps id 2
		// softmax(logits): 0.387, 0.235, 0.105, 0.105, 0.019, 0.065 → the
		// first three reach 0.70.
		{"top-p 0.7", kernels.Sampling{Temperature: 1, TopP: 0.7, Seed: 4}, softmax(logits, 1, []int{0, 1, 2})},
		{"top-k 5 and top-p 0.95", kernels.Sampling{Temperature: 1, TopK: 5, TopP: 0.95, Seed: 5}, softmax(logits, 1, []int{0, 1, 2, 3, 5})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := frequencies(logits, tc.s, n)
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 0.012 {
					t.Errorf("token %d drawn %.3f of the time; want %.3f", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestSampleDeterministic: a draw is a function of (seed, position) and
// the logits only.
func TestSampleDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	s := kernels.Sampling{Temperature: 0.9, TopP: 0.9, Seed: 11}
	var a, b []int32
	for pos := range 50 {
		a = append(a, kernels.Sample(logits, s, pos))
	}
	for pos := range 50 {
		b = append(b, kernels.Sample(logits, s, pos))
	}
	if !slices.Equal(a, b) {
		t.Errorf("the same seeds and positions drew %v, then %v", a, b)
	}
	s.Seed = 12
	var c []int32
	for pos := range 50 {
		c = append(c, kernels.Sample(logits, s, pos))
	}
	if slices.Equal(a, c) {
		t.Error("seeds 11 and 12 drew the same 50 tokens")
	}
}

// TestTopLogprobs checks the partial selection against a full sort, with
// ties, for small and large n.
func TestTopLogprobs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	logits := make([]float32, 500)
	for i := range logits {
		logits[i] = float32(r.IntN(40)) / 4 // many ties
	}
	lse := kernels.LogSumExp(logits)
	var naive float64
	for _, l := range logits {
		naive += math.Exp(float64(l))
	}
	if math.Abs(lse-math.Log(naive)) > 1e-12 {
		t.Errorf("LogSumExp %v; want %v", lse, math.Log(naive))
	}
	all := kernels.TopLogprobs(logits, lse, len(logits))
	for i := 1; i < len(all); i++ {
		x, y := all[i-1], all[i]
		if x.Logprob < y.Logprob || x.Logprob == y.Logprob && x.Token > y.Token {
			t.Fatalf("entries %d and %d out of order: %v, %v", i-1, i, x, y)
		}
	}
	for _, n := range []int{1, 5, 20, 64, 65, 200} {
		if got := kernels.TopLogprobs(logits, lse, n); !slices.Equal(got, all[:n]) {
			t.Errorf("TopLogprobs(%d) = %v…; want %v…", n, got[:min(3, n)], all[:min(3, n)])
		}
	}
	if got := kernels.TopLogprobs(logits, lse, 0); got != nil {
		t.Errorf("TopLogprobs(0) = %v; want nil", got)
	}
}
