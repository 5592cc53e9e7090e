package precision

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// ErrorBound returns the relative L2 error Gearbox expects, at most, from
// one layer at f on well-scaled data: a conservative prior, a little above
// what one synthetic layer measured on an H100 (docs/precision.md):
//
//	format  bound   measured
//	fp32    1e-6    5.4e-7
//	tf32    1e-3    2.9e-4
//	fp16    1e-3    3.6e-4
//	bf16    1e-2    2.9e-3
//	fp8     6e-2    3.8e-2 (per-tensor scales)
//	fp4     1.5e-1  9.5e-2 (NVFP4 weights)
//
// Select uses it before anything is known about a model; the quality loop
// replaces it with the model's measured error. It is +Inf for a value that
// is not a concrete format.
func ErrorBound(f Format) float64 {
	switch f {
	case FP32:
		return 1e-6
	case TF32, FP16:
		return 1e-3
	case BF16:
		return 1e-2
	case FP8:
		return 6e-2
	case FP4:
		return 1.5e-1
	}
	return math.Inf(1)
}

// Select returns the precision a job runs at:
//
//  1. req Auto (or "") means policy, the model's current precision. If the
//     device cannot run it, the nearest more accurate rung of the ladder it
//     can run is used instead.
//  2. An explicit req is honoured when caps can run it (natively or
//     emulated); otherwise Select fails with an error wrapping
//     ErrUnsupported that names the formats the device runs. req need not be
//     on the ladder.
//  3. A job max_error (jobMaxError > 0) below the chosen format's
//     ErrorBound moves the job up the ladder: to the cheapest rung, no
//     cheaper than the chosen format's position (searched from the ladder's
//     end when the format is not on it), that caps can run and whose bound
//     is at most jobMaxError. fp32 always qualifies, whatever its bound. A
//     jobMaxError of 0 or less (or NaN) sets no limit.
//
// A nil or empty ladder means DefaultLadder; another must pass
// ValidateLadder (errors wrap ErrInvalidLadder). A req or policy that is not
// a format gives an error wrapping ErrUnknown.
func Select(req, policy Format, ladder []Format, jobMaxError float64, caps Capabilities) (Format, error) {
	return SelectMeasured(req, policy, ladder, jobMaxError, caps, nil)
}

// SelectMeasured is Select with the errors the quality loop has measured
// for the model: a format's bound is measured[f] where present, else
// ErrorBound(f). A nil map is Select.
func SelectMeasured(req, policy Format, ladder []Format, jobMaxError float64, caps Capabilities, measured map[Format]float64) (Format, error) {
	if len(ladder) == 0 {
		ladder = DefaultLadder
	} else if err := ValidateLadder(ladder); err != nil {
		return "", err
	}
	var f Format
	switch {
	case req == Auto || req == "":
		if !policy.Valid() {
			return "", fmt.Errorf("%w: policy %q", ErrUnknown, string(policy))
		}
		f = policy
		if caps.Support(f) == Unavailable {
			g, ok := climb(ladder, f, caps, func(Format) bool { return true })
			if !ok {
				return "", unsupported(f, caps)
			}
			f = g
		}
	case req.Valid():
		if caps.Support(req) == Unavailable {
			return "", unsupported(req, caps)
		}
		f = req
	default:
		return "", fmt.Errorf("%w %q", ErrUnknown, string(req))
	}
	meets := func(f Format) bool {
		bound, ok := measured[f]
		if !ok {
			bound = ErrorBound(f)
		}
		return f == FP32 || bound <= jobMaxError
	}
	if !(jobMaxError > 0) || meets(f) {
		return f, nil
	}
	g, ok := climb(ladder, f, caps, meets)
	if !ok {
		return "", fmt.Errorf("%w: no rung of %v meets max_error %g on %s (supports %s)",
			ErrUnsupported, ladder, jobMaxError, caps.Device, list(caps.Supported()))
	}
	return g, nil
}

// climb returns the first rung above f on ladder (above the end when f is not
// on it), walking toward fp32, that caps runs and ok accepts.
func climb(ladder []Format, f Format, caps Capabilities, ok func(Format) bool) (Format, bool) {
	i := slices.Index(ladder, f)
	if i < 0 {
		i = len(ladder)
	}
	for i--; i >= 0; i-- {
		if g := ladder[i]; caps.Support(g) != Unavailable && ok(g) {
			return g, true
		}
	}
	return "", false
}

func unsupported(f Format, caps Capabilities) error {
	return fmt.Errorf("%w: %s on %s (supports %s)", ErrUnsupported, f, caps.Device, list(caps.Supported()))
}

func list(fs []Format) string {
	if len(fs) == 0 {
		return "nothing"
	}
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}
