//go:build cgo

package cuda

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPCopy: a split copy writes exactly src into dst's prefix and nothing
// past it, for lengths below, at and around the split points.
func TestPCopy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, pcopyChunk - 1, 2 * pcopyChunk, 2*pcopyChunk + 1, 5*pcopyChunk + 3, 17*pcopyChunk + 11} {
		src := make([]float32, n)
		for i := range src {
			src[i] = r.Float32()
		}
		dst := make([]float32, n+5)
		for i := range dst {
			dst[i] = -1
		}
		pcopy(dst, src)
		for i, v := range src {
			if dst[i] != v {
				t.Fatalf("n=%d: dst[%d] = %v, want %v", n, i, dst[i], v)
			}
		}
		for i := n; i < len(dst); i++ {
			if dst[i] != -1 {
				t.Fatalf("n=%d: dst[%d] = %v written past the copy", n, i, dst[i])
			}
		}
	}
}

// BenchmarkPCopy: a 256-row batch of 4,096 float32s (4 MB), copied by one
// goroutine and split.
func BenchmarkPCopy(b *testing.B) {
	src := make([]float32, 256*4096)
	dst := make([]float32, len(src))
	b.SetBytes(int64(4 * len(src)))
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			copy(dst, src)
		}
	})
	b.Run("pcopy", func(b *testing.B) {
		for b.Loop() {
			pcopy(dst, src)
		}
	})
}

// TestInFlightEnv: $GEARBOX_CUDA_IN_FLIGHT sets InFlight where the Config
// leaves it 0, and a value out of range is an error naming the variable.
func TestInFlightEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		cfg  int
		want int // 0: invalid
	}{
		{"", 0, InFlightDefault}, {"6", 0, 6}, {"6", 2, 2}, {"16", 0, 16},
		{"0", 0, 0}, {"17", 0, 0}, {"many", 0, 0},
	} {
		t.Setenv(EnvInFlight, tc.env)
		c := Config{InFlight: tc.cfg}
		err := c.validate()
		if tc.want == 0 {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("$%s=%q: validate = %v; want ErrInvalidConfig", EnvInFlight, tc.env, err)
			}
			continue
		}
		if err != nil || c.InFlight != tc.want {
			t.Errorf("$%s=%q, InFlight %d: got %d, %v; want %d", EnvInFlight, tc.env, tc.cfg, c.InFlight, err, tc.want)
		}
	}
}

// TestOffSwitchEnv: $GEARBOX_CUDA_PDL=false (or 0) turns NoPDL on, and
// $GEARBOX_CUDA_PREFILL_ATTENTION=false NoPrefillAttention; true, 1 or
// unset leave it as the Config says, and another value is an error naming
// the variable.
func TestOffSwitchEnv(t *testing.T) {
	for _, sw := range []struct {
		env   string
		field func(*Config) *bool
	}{
		{EnvPDL, func(c *Config) *bool { return &c.NoPDL }},
		{EnvPrefillAttention, func(c *Config) *bool { return &c.NoPrefillAttention }},
	} {
		for _, tc := range []struct {
			env   string
			cfg   bool
			want  bool
			valid bool
		}{
			{"", false, false, true}, {"true", false, false, true}, {"1", true, true, true},
			{"false", false, true, true}, {"0", false, true, true}, {"off", false, false, false},
		} {
			t.Setenv(sw.env, tc.env)
			var c Config
			*sw.field(&c) = tc.cfg
			err := c.validate()
			if !tc.valid {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), sw.env) {
					t.Errorf("$%s=%q: validate = %v; want ErrInvalidConfig naming it", sw.env, tc.env, err)
				}
				continue
			}
			if got := *sw.field(&c); err != nil || got != tc.want {
				t.Errorf("$%s=%q, Config %v: got %v, %v; want %v", sw.env, tc.env, tc.cfg, got, err, tc.want)
			}
		}
		t.Setenv(sw.env, "")
	}
}
