// Package par splits large one-off loops (a checkpoint's validation, a
// weight's quantization) over the host's cores. A language model's load
// goes through billions of weights: on one core its fp8 and fp4
// quantization alone took minutes for an 8-billion-parameter model.
package par

import (
	"runtime"
	"sync"
)

// For calls fn on contiguous chunks [lo, hi) covering [0, n), at once on
// up to GOMAXPROCS goroutines (the caller's among them), each chunk at
// least grain long, and waits for all. A loop of fewer than 2 × grain
// items is a plain call fn(0, n). fn must write disjoint parts of its
// output for different chunks; the result is then the same as one call.
func For(n, grain int, fn func(lo, hi int)) {
	Split(min(runtime.GOMAXPROCS(0), n/max(grain, 1)), n, fn)
}

// Split calls fn on parts contiguous chunks [lo, hi) covering [0, n), one
// on the calling goroutine and the rest on new ones, and waits for all.
// With parts <= 1 (or n < 2) it is a plain call fn(0, n).
func Split(parts, n int, fn func(lo, hi int)) {
	parts = min(parts, n)
	if parts < 2 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := 1; p < parts; p++ {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Go(func() { fn(lo, hi) })
	}
	fn(0, n/parts)
	wg.Wait()
}
