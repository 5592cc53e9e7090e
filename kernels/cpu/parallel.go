package cpu

import "github.com/gearbox-inference/gearbox/internal/par"

// parallelMinNs is the estimated serial time, in nanoseconds, below which an
// elementwise or per-row layer runs on the calling goroutine alone. Starting
// and joining a goroutine costs about a microsecond in a tight loop, but
// waking an idle core takes far longer on the (virtualised) 2-core
// development machine: BenchmarkOps, best of 3, found splitting over two
// goroutines no faster at 120 µs of gelu (2048 values) or 37 µs of
// layernorm, 1.15× faster at 190 µs of softmax, 1.35× at 150 µs of
// layernorm and 1.6–1.85× from 500 µs of gelu or softmax. relu is
// memory-bound and never gained up to 131072 values.
const parallelMinNs = 100_000

// threadsFor returns how many goroutines work of about ns nanoseconds,
// divisible into at most parts pieces, should use given threads available.
func threadsFor(threads int, ns float64, parts int) int {
	if ns < parallelMinNs {
		return 1
	}
	return max(1, min(threads, parts))
}

// parallel calls fn on threads contiguous chunks [lo, hi) covering [0, n),
// one on the calling goroutine and the rest on new ones, and waits for all.
// With threads <= 1 it is a plain call fn(0, n).
func parallel(threads, n int, fn func(lo, hi int)) { par.Split(threads, n, fn) }
