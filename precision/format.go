// Package precision names the numeric formats Gearbox can run a model at,
// and the ladder a model climbs down as the quality loop allows.
//
// The format names are the wire names used in jobs and results: fp32, tf32,
// bf16, fp16, fp8 (E4M3) and fp4 (NVFP4 weights). Auto is not a format: it
// asks the worker to use the model's current policy.
package precision

import (
	"errors"
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

// DefaultLadder is the order a model moves down when its error allows.
var DefaultLadder = []Format{FP32, TF32, BF16, FP8, FP4}

// ErrUnknown is returned (wrapped) by Parse for a name that is not a format.
var ErrUnknown = errors.New("unknown precision")

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
