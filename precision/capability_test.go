package precision_test

import (
	"slices"
	"testing"

	p "github.com/gearbox-inference/gearbox/precision"
)

func TestCapabilities(t *testing.T) {
	const (
		U = p.Unavailable
		E = p.Emulated
		N = p.Native
	)
	tests := []struct {
		name string
		caps p.Capabilities
		// fp32, tf32, fp16, bf16, fp8, fp4 (the order of All)
		want [6]p.Support
	}{
		{"cpu", p.CPUCapabilities(), [6]p.Support{N, E, E, E, E, E}},
		{"6.1", p.CUDACapabilities(6, 1), [6]p.Support{N, U, U, U, U, U}},
		{"7.0", p.CUDACapabilities(7, 0), [6]p.Support{N, U, N, U, U, U}},
		{"7.5", p.CUDACapabilities(7, 5), [6]p.Support{N, U, N, U, U, U}},
		{"8.0", p.CUDACapabilities(8, 0), [6]p.Support{N, N, N, N, U, E}},
		{"8.6", p.CUDACapabilities(8, 6), [6]p.Support{N, N, N, N, U, E}},
		{"8.9", p.CUDACapabilities(8, 9), [6]p.Support{N, N, N, N, N, E}},
		{"9.0", p.CUDACapabilities(9, 0), [6]p.Support{N, N, N, N, N, E}},
		{"10.0", p.CUDACapabilities(10, 0), [6]p.Support{N, N, N, N, N, N}},
		{"12.0", p.CUDACapabilities(12, 0), [6]p.Support{N, N, N, N, N, N}},
		{"zero", p.Capabilities{}, [6]p.Support{}},
	}
	for _, tt := range tests {
		var want []p.Format
		for i, f := range p.All {
			if got := tt.caps.Support(f); got != tt.want[i] {
				t.Errorf("%s: Support(%s) = %v; want %v", tt.name, f, got, tt.want[i])
			}
			if tt.want[i] != p.Unavailable {
				want = append(want, f)
			}
		}
		if got := tt.caps.Supported(); !slices.Equal(got, want) {
			t.Errorf("%s: Supported() = %v; want %v", tt.name, got, want)
		}
		if got := tt.caps.Support(p.Auto); got != p.Unavailable {
			t.Errorf("%s: Support(auto) = %v", tt.name, got)
		}
	}
	if got, want := p.CUDACapabilities(8, 0).String(), "cuda 8.0: fp32 native, tf32 native, fp16 native, bf16 native, fp8 unavailable, fp4 emulated"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	c := p.CUDACapabilities(9, 0).With(p.FP4, p.Unavailable)
	if c.Support(p.FP4) != p.Unavailable || c.Support(p.FP8) != p.Native || p.CUDACapabilities(9, 0).Support(p.FP4) != p.Emulated {
		t.Errorf("With: %v", c)
	}
	if c.With(p.Auto, p.Native) != c {
		t.Error("With(auto) changed the capabilities")
	}
	//lint:ignore SA4000 the point: two calls give equal, comparable values
	if p.CUDACapabilities(8, 9) != p.CUDACapabilities(8, 9) {
		t.Error("capabilities are not comparable values")
	}
}
