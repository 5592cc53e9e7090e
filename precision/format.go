package precision

import (
	"fmt"
	"strings"
)

// Format is a numeric precision a forward pass can run at. Its string value
// is the wire name.
type Format string

// The formats, from most accurate to cheapest (fp16 sits beside bf16).
const (
	FP32 Format = "fp32"
	TF32 Format = "tf32"
	BF16 Format = "bf16"
	FP16 Format = "fp16"
	FP8  Format = "fp8"
	FP4  Format = "fp4"

	// Auto is the job-level request for the model's current policy. It is
	// never the precision a result reports.
	Auto Format = "auto"
)

// All lists every concrete format, most accurate first.
var All = []Format{FP32, TF32, FP16, BF16, FP8, FP4}

// DefaultLadder is the order a model moves down when its error allows. A
// model's manifest may replace it (see ValidateLadder); never modify it.
var DefaultLadder = []Format{FP32, TF32, BF16, FP8, FP4}

// Parse returns the format named s. The empty string means Auto.
func Parse(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if f == "" {
		return Auto, nil
	}
	if f == Auto || f.Valid() {
		return f, nil
	}
	return "", fmt.Errorf("%w %q (want auto, fp32, tf32, bf16, fp16, fp8 or fp4)", ErrUnknown, s)
}

// Valid reports whether f is a concrete format (not Auto, not empty).
func (f Format) Valid() bool {
	for _, g := range All {
		if f == g {
			return true
		}
	}
	return false
}

func (f Format) String() string { return string(f) }

// index is f's position in All, or -1 when f is not a concrete format.
func (f Format) index() int {
	switch f {
	case FP32:
		return 0
	case TF32:
		return 1
	case FP16:
		return 2
	case BF16:
		return 3
	case FP8:
		return 4
	case FP4:
		return 5
	}
	return -1
}

// MoreAccurate reports whether f is strictly more accurate than g in the
// order fp32, tf32, bf16 = fp16, fp8, fp4. Values that are not concrete
// formats are more accurate than none and less accurate than none.
func (f Format) MoreAccurate(g Format) bool {
	return f.rank() >= 0 && g.rank() >= 0 && f.rank() < g.rank()
}

// rank orders formats from most accurate (0) to cheapest; bf16 and fp16
// share a rank. It is -1 when f is not a concrete format.
func (f Format) rank() int {
	switch f {
	case FP32:
		return 0
	case TF32:
		return 1
	case FP16, BF16:
		return 2
	case FP8:
		return 3
	case FP4:
		return 4
	}
	return -1
}

// BytesPerParam is the storage one weight takes at f, block scales included:
// 4 for fp32 and tf32 (tf32 is fp32 storage), 2 for bf16 and fp16, 1 for fp8
// and 0.5625 for fp4 (NVFP4: 4 bits plus one E4M3 scale per 16 weights, 4.5
// bits). Per-row and per-tensor scales depend on the shape: WeightBytes counts
// them. It is 0 for a value that is not a concrete format.
func (f Format) BytesPerParam() float64 {
	switch f {
	case FP32, TF32:
		return 4
	case BF16, FP16:
		return 2
	case FP8:
		return 1
	case FP4:
		return 4.5 / 8
	}
	return 0
}
