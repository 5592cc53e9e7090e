package precision_test

import (
	"errors"
	"testing"

	p "github.com/gearbox-inference/gearbox/precision"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want p.Format
		err  error
	}{
		{"", p.Auto, nil}, {"auto", p.Auto, nil}, {" FP8 ", p.FP8, nil}, {"bf16", p.BF16, nil},
		{"fp64", "", p.ErrUnknown}, {"e4m3", "", p.ErrUnknown},
	} {
		got, err := p.Parse(tt.s)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tt.s, got, err, tt.want, tt.err)
		}
	}
	for _, f := range p.All {
		if !f.Valid() || f.String() != string(f) {
			t.Errorf("%s is not valid", f)
		}
	}
	if p.Auto.Valid() || p.Format("").Valid() {
		t.Error("auto or empty is valid")
	}
}

func TestBytes(t *testing.T) {
	for _, tt := range []struct {
		f          p.Format
		perParam   float64
		rows, cols int
		weight     int64
	}{
		{p.FP32, 4, 4096, 4096, 4 << 24},
		{p.TF32, 4, 4096, 4096, 4 << 24},
		{p.BF16, 2, 4096, 4096, 2 << 24},
		{p.FP16, 2, 10, 3, 60},
		{p.FP8, 1, 4096, 4096, 1<<24 + 4*4096},
		{p.FP4, 0.5625, 4096, 4096, 4096*(2048+256) + 4}, // 4.5 bits
		{p.FP4, 0.5625, 3, 17, 3*(16+2) + 4},             // padded to 32
		{p.Auto, 0, 4, 4, 0},
		{p.FP32, 4, -1, 4, 0},
	} {
		if got := tt.f.BytesPerParam(); got != tt.perParam {
			t.Errorf("%s.BytesPerParam() = %g; want %g", tt.f, got, tt.perParam)
		}
		if got := p.WeightBytes(tt.f, tt.rows, tt.cols); got != tt.weight {
			t.Errorf("WeightBytes(%s, %d, %d) = %d; want %d", tt.f, tt.rows, tt.cols, got, tt.weight)
		}
	}
	if got, want := p.MXFP4Bytes(4096, 4096), int64(4096*(2048+128)); got != want { // 4.25 bits
		t.Errorf("MXFP4Bytes = %d; want %d", got, want)
	}
	if got, want := p.FP8Bytes(10, 10, false), int64(104); got != want {
		t.Errorf("FP8Bytes per tensor = %d; want %d", got, want)
	}
	if got := p.MXFP4Bytes(2, 33); got != 2*(32+2) {
		t.Errorf("MXFP4Bytes(2, 33) = %d; want %d", got, 2*(32+2))
	}
}

func TestMoreAccurate(t *testing.T) {
	order := []p.Format{p.FP32, p.TF32, p.BF16, p.FP8, p.FP4}
	for i, f := range order {
		for j, g := range order {
			if got := f.MoreAccurate(g); got != (i < j) {
				t.Errorf("%s.MoreAccurate(%s) = %v", f, g, got)
			}
		}
	}
	if p.FP16.MoreAccurate(p.BF16) || p.BF16.MoreAccurate(p.FP16) || p.Auto.MoreAccurate(p.FP4) || p.FP32.MoreAccurate("x") {
		t.Error("unranked or equal formats compare as more accurate")
	}
}
