package precision_test

import (
	"errors"
	"strings"
	"testing"

	p "github.com/gearbox-inference/gearbox/precision"
)

func TestValidateLadder(t *testing.T) {
	tests := []struct {
		ladder []p.Format
		msg    string // "" for valid
	}{
		{p.DefaultLadder, ""},
		{[]p.Format{p.FP32}, ""},
		{[]p.Format{p.FP32, p.TF32, p.FP16, p.FP8, p.FP4}, ""},
		{[]p.Format{p.FP32, p.BF16, p.FP16, p.FP8}, ""},
		{[]p.Format{p.FP32, p.FP16, p.BF16}, ""},
		{[]p.Format{p.FP32, p.FP4}, ""},
		{nil, "empty"},
		{[]p.Format{}, "empty"},
		{[]p.Format{p.TF32, p.FP32}, "starts with tf32"},
		{[]p.Format{p.FP32, p.Auto}, `"auto" is not a format`},
		{[]p.Format{p.FP32, "fp64"}, `"fp64" is not a format`},
		{[]p.Format{p.FP32, p.BF16, p.BF16}, "ladder[2] bf16 is already ladder[1]"},
		{[]p.Format{p.FP32, p.FP8, p.BF16}, "ladder[2] bf16 is more accurate than ladder[1] fp8"},
		{[]p.Format{p.FP32, p.FP4, p.FP8}, "more accurate"},
	}
	for _, tt := range tests {
		err := p.ValidateLadder(tt.ladder)
		if tt.msg == "" {
			if err != nil {
				t.Errorf("ValidateLadder(%v) = %v; want nil", tt.ladder, err)
			}
			continue
		}
		if !errors.Is(err, p.ErrInvalidLadder) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ValidateLadder(%v) = %v; want ErrInvalidLadder with %q", tt.ladder, err, tt.msg)
		}
	}
}

func TestNextPrev(t *testing.T) {
	l := p.DefaultLadder
	tests := []struct {
		f          p.Format
		next, prev p.Format
	}{
		{p.FP32, p.TF32, ""},
		{p.TF32, p.BF16, p.FP32},
		{p.BF16, p.FP8, p.TF32},
		{p.FP8, p.FP4, p.BF16},
		{p.FP4, "", p.FP8},
		{p.FP16, "", ""}, // not on the ladder
	}
	for _, tt := range tests {
		n, ok := p.Next(l, tt.f)
		if n != tt.next || ok != (tt.next != "") {
			t.Errorf("Next(%s) = %q, %v; want %q", tt.f, n, ok, tt.next)
		}
		pr, ok := p.Prev(l, tt.f)
		if pr != tt.prev || ok != (tt.prev != "") {
			t.Errorf("Prev(%s) = %q, %v; want %q", tt.f, pr, ok, tt.prev)
		}
	}
}
