package cpu

import "sync"

// parallelMinNs is the estimated serial time, in nanoseconds, below which an
// elementwise or per-row layer runs on the calling goroutine alone. Starting
// and joining a goroutine costs a few microseconds here (and more when the
// other core is busy), so splitting pays from a few tens of microseconds of
// work. BenchmarkOps measures serial against split runs around it; on the
// 2-core development machine gelu and tanh split 1.6–1.9× faster from a few
// thousand values, while relu needs hundreds of thousands to gain at all.
const parallelMinNs = 20_000

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
func parallel(threads, n int, fn func(lo, hi int)) {
	threads = min(threads, n)
	if threads <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := 1; p < threads; p++ {
		lo, hi := n*p/threads, n*(p+1)/threads
		wg.Go(func() { fn(lo, hi) })
	}
	fn(0, n/threads)
	wg.Wait()
}
