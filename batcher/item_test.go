package batcher_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gearbox-inference/gearbox/batcher"
)

func TestItemDone(t *testing.T) {
	tests := []struct {
		name  string
		rows  int
		calls []int
		want  []bool
	}{
		{"whole", 4, []int{4}, []bool{true}},
		{"in parts", 10, []int{4, 4, 2}, []bool{false, false, true}},
		{"past the end", 3, []int{2, 2, 1}, []bool{false, true, false}},
		{"non-positive ignored", 2, []int{0, -5, 2}, []bool{false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := &batcher.Item{Rows: tt.rows}
			for i, n := range tt.calls {
				if got := it.Done(n); got != tt.want[i] {
					t.Errorf("call %d: Done(%d) = %v; want %v", i, n, got, tt.want[i])
				}
			}
		})
	}
}

func TestItemDoneConcurrent(t *testing.T) {
	const goroutines, each = 64, 50
	it := &batcher.Item{Rows: goroutines * each}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if it.Done(1) {
					wins.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Errorf("Done reported completion %d times; want 1", got)
	}
}
