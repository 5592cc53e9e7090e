package precision_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	p "github.com/gearbox-inference/gearbox/precision"
)

func TestSelect(t *testing.T) {
	cpu := p.CPUCapabilities()
	a100 := p.CUDACapabilities(8, 0)
	h100 := p.CUDACapabilities(9, 0)
	t4 := p.CUDACapabilities(7, 5)
	fp16Ladder := []p.Format{p.FP32, p.TF32, p.FP16, p.FP8, p.FP4}
	tests := []struct {
		name   string
		req    p.Format
		policy p.Format
		ladder []p.Format
		maxErr float64
		caps   p.Capabilities
		want   p.Format
		err    error
		msg    string // in the error
	}{
		{"auto is the policy", p.Auto, p.BF16, nil, 0, h100, p.BF16, nil, ""},
		{"empty is auto", "", p.FP8, nil, 0, h100, p.FP8, nil, ""},
		{"auto on cpu", p.Auto, p.FP4, nil, 0, cpu, p.FP4, nil, ""},
		{"auto policy unsupported climbs", p.Auto, p.FP8, nil, 0, a100, p.BF16, nil, ""},
		{"auto policy unsupported climbs past gaps", p.Auto, p.FP8, nil, 0, t4, p.FP32, nil, ""},
		{"explicit supported", p.TF32, p.FP8, nil, 0, h100, p.TF32, nil, ""},
		{"explicit off the ladder", p.FP16, p.FP8, nil, 0, h100, p.FP16, nil, ""},
		{"explicit emulated", p.FP4, p.FP32, nil, 0, a100, p.FP4, nil, ""},
		{"explicit unsupported", p.FP8, p.FP32, nil, 0, a100, "", p.ErrUnsupported, "fp8 on cuda 8.0 (supports fp32, tf32, fp16, bf16, fp4)"},
		{"explicit unsupported t4", p.BF16, p.FP32, nil, 0, t4, "", p.ErrUnsupported, "supports fp32, fp16"},
		{"nothing supported", p.Auto, p.FP32, nil, 0, p.Capabilities{}, "", p.ErrUnsupported, "supports nothing"},
		{"max_error allows", p.Auto, p.FP8, nil, 0.06, h100, p.FP8, nil, ""},
		{"max_error moves fp8 to bf16", p.Auto, p.FP8, nil, 0.05, h100, p.BF16, nil, ""},
		{"max_error moves fp4 to bf16", p.Auto, p.FP4, nil, 0.01, h100, p.BF16, nil, ""},
		{"max_error moves fp4 to fp8", p.Auto, p.FP4, nil, 0.1, h100, p.FP8, nil, ""},
		{"max_error moves to tf32", p.Auto, p.FP8, nil, 1e-3, h100, p.TF32, nil, ""},
		{"max_error moves to fp32", p.Auto, p.FP8, nil, 1e-4, h100, p.FP32, nil, ""},
		{"fp32 always qualifies", p.Auto, p.FP8, nil, 1e-9, h100, p.FP32, nil, ""},
		{"max_error moves an explicit request", p.FP4, p.FP32, nil, 0.02, cpu, p.BF16, nil, ""},
		{"max_error off the ladder", p.FP16, p.FP32, nil, 5e-3, h100, p.FP16, nil, ""},
		{"max_error off the ladder moves", p.FP16, p.FP32, nil, 5e-4, h100, p.FP32, nil, ""},
		{"max_error skips unsupported rungs", p.Auto, p.FP4, []p.Format{p.FP32, p.TF32, p.BF16, p.FP8, p.FP4}, 0.1, a100, p.BF16, nil, ""},
		{"negative max_error is no limit", p.Auto, p.FP4, nil, -1, h100, p.FP4, nil, ""},
		{"NaN max_error is no limit", p.Auto, p.FP4, nil, math.NaN(), h100, p.FP4, nil, ""},
		{"custom ladder with fp16", p.Auto, p.FP8, fp16Ladder, 0.02, h100, p.FP16, nil, ""},
		{"custom ladder with fp16 on t4", p.Auto, p.FP8, fp16Ladder, 0, t4, p.FP16, nil, ""},
		{"invalid ladder", p.Auto, p.FP8, []p.Format{p.TF32, p.FP8}, 0, h100, "", p.ErrInvalidLadder, "starts with tf32"},
		{"unknown request", "fp64", p.FP8, nil, 0, h100, "", p.ErrUnknown, "fp64"},
		{"unknown policy", p.Auto, "", nil, 0, h100, "", p.ErrUnknown, "policy"},
	}
	for _, tt := range tests {
		got, err := p.Select(tt.req, tt.policy, tt.ladder, tt.maxErr, tt.caps)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%s: Select = %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: error %q does not contain %q", tt.name, err, tt.msg)
		}
	}
}

func TestErrorBound(t *testing.T) {
	prev := 0.0
	for _, f := range []p.Format{p.FP32, p.TF32, p.BF16, p.FP8, p.FP4} {
		b := p.ErrorBound(f)
		if !(b > prev) {
			t.Errorf("ErrorBound(%s) = %g, not above the rung before (%g)", f, b, prev)
		}
		prev = b
	}
	// Above the measured H100 errors (docs/precision.md).
	measured := map[p.Format]float64{p.FP32: 5.4e-7, p.TF32: 2.9e-4, p.FP16: 3.6e-4, p.BF16: 2.9e-3, p.FP8: 3.8e-2, p.FP4: 9.5e-2}
	for f, m := range measured {
		if p.ErrorBound(f) <= m {
			t.Errorf("ErrorBound(%s) = %g; measured %g", f, p.ErrorBound(f), m)
		}
	}
	if !math.IsInf(p.ErrorBound(p.Auto), 1) {
		t.Errorf("ErrorBound(auto) = %g; want +Inf", p.ErrorBound(p.Auto))
	}
}

// TestSelectMeasured: measured errors replace the priors where present.
func TestSelectMeasured(t *testing.T) {
	h100 := p.CUDACapabilities(9, 0)
	measured := map[p.Format]float64{p.FP8: 0.05, p.BF16: 0.02, p.TF32: 4e-4}
	for _, c := range []struct {
		maxErr float64
		want   p.Format
	}{{0, p.FP8}, {0.06, p.FP8}, {0.03, p.BF16}, {0.015, p.TF32}, {1e-4, p.FP32}} {
		got, err := p.SelectMeasured(p.Auto, p.FP8, nil, c.maxErr, h100, measured)
		if err != nil || got != c.want {
			t.Errorf("max_error %g: %s, %v; want %s", c.maxErr, got, err, c.want)
		}
	}
	// Without measurements the priors apply: bf16's 1e-2 meets 0.015.
	if got, _ := p.SelectMeasured(p.Auto, p.FP8, nil, 0.015, h100, nil); got != p.BF16 {
		t.Errorf("nil measurements: %s; want bf16", got)
	}
}
