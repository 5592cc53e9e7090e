package par

import (
	"runtime"
	"sync"
	"testing"
)

func TestForCoversEachIndexOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, tc := range []struct{ n, grain int }{{0, 1}, {1, 1}, {7, 1}, {100, 10}, {100, 60}, {1000, 3}, {5, 0}} {
		var mu sync.Mutex
		seen := make([]int, tc.n)
		calls := 0
		For(tc.n, tc.grain, func(lo, hi int) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if hi-lo < tc.grain && tc.n >= 2*tc.grain {
				t.Errorf("For(%d, %d): chunk [%d, %d) is shorter than the grain", tc.n, tc.grain, lo, hi)
			}
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Errorf("For(%d, %d): index %d visited %d times, want 1", tc.n, tc.grain, i, c)
			}
		}
		if tc.n < 2*max(tc.grain, 1) && calls != 1 {
			t.Errorf("For(%d, %d): %d calls, want 1 for a small loop", tc.n, tc.grain, calls)
		}
		if want := min(4, tc.n/max(tc.grain, 1)); want >= 2 && calls != want {
			t.Errorf("For(%d, %d): %d calls, want %d (GOMAXPROCS = 4, or fewer chunks of the grain)", tc.n, tc.grain, calls, want)
		}
	}
}
