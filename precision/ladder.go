package precision

import (
	"fmt"
	"slices"
)

// ValidateLadder checks a model's ladder, the formats it may run at from
// most accurate to cheapest: at least one format; each a concrete format
// (not auto); none twice; fp32 first; and ordered fp32, tf32, bf16/fp16,
// fp8, fp4, with any rung left out. bf16 and fp16 share a rung: a ladder may
// name either, or both (in either order). Errors wrap ErrInvalidLadder.
func ValidateLadder(ladder []Format) error {
	if len(ladder) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidLadder)
	}
	for i, f := range ladder {
		if !f.Valid() {
			return fmt.Errorf("%w: ladder[%d] %q is not a format", ErrInvalidLadder, i, string(f))
		}
		if j := slices.Index(ladder[:i], f); j >= 0 {
			return fmt.Errorf("%w: ladder[%d] %s is already ladder[%d]", ErrInvalidLadder, i, f, j)
		}
	}
	if ladder[0] != FP32 {
		return fmt.Errorf("%w: starts with %s, want fp32", ErrInvalidLadder, ladder[0])
	}
	for i := 1; i < len(ladder); i++ {
		if ladder[i].rank() < ladder[i-1].rank() {
			return fmt.Errorf("%w: ladder[%d] %s is more accurate than ladder[%d] %s (want most accurate first)",
				ErrInvalidLadder, i, ladder[i], i-1, ladder[i-1])
		}
	}
	return nil
}

// Next returns the rung after f on ladder: the next cheaper format. It
// reports false when f is the last rung or is not on the ladder.
func Next(ladder []Format, f Format) (Format, bool) {
	i := slices.Index(ladder, f)
	if i < 0 || i+1 >= len(ladder) {
		return "", false
	}
	return ladder[i+1], true
}

// Prev returns the rung before f on ladder: the next more accurate format.
// It reports false when f is the first rung or is not on the ladder.
func Prev(ladder []Format, f Format) (Format, bool) {
	i := slices.Index(ladder, f)
	if i <= 0 {
		return "", false
	}
	return ladder[i-1], true
}
