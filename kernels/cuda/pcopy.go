//go:build cgo

package cuda

import (
	"runtime"

	"github.com/gearbox-inference/gearbox/internal/par"
)

// Copies between Go memory and a slot's pinned buffers. One core copies a
// few GB/s out of DRAM: on the H200 host a 4 MB batch took 0.6 ms in and
// 0.45 ms out (docs/benchmarks.md), held the slot all that time, and with
// three slots capped the bare loop at ~0.67× the GPU's busy time. A large
// copy is split into chunks that other goroutines copy at once.

const (
	// pcopyChunk is the least a chunk copies (in float32s): below two of
	// them, a copy stays on the caller's goroutine.
	pcopyChunk = 64 << 10 // 256 KiB
	// pcopyMaxParts bounds the chunks of one copy (several callers copy
	// at once, and the host's cores are shared with them).
	pcopyMaxParts = 8
)

// pcopy copies src into dst (len(dst) ≥ len(src)), split over up to
// pcopyMaxParts goroutines (and no more than GOMAXPROCS) when src is
// large.
func pcopy(dst, src []float32) {
	parts := min(len(src)/pcopyChunk, pcopyMaxParts, runtime.GOMAXPROCS(0))
	par.Split(parts, len(src), func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
}
