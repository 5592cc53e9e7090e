package engine

// blocks allocates a KV cache's blocks. It is not safe for concurrent use:
// the Scheduler owns one.
type blocks struct {
	free []int32 // a stack: the most recently freed block is reused first
	size int     // tokens per block
	n    int     // blocks in all
}

func newBlocks(n, size int) *blocks {
	b := &blocks{free: make([]int32, n), size: size, n: n}
	for i := range n {
		b.free[i] = int32(n - 1 - i) // block 0 is handed out first
	}
	return b
}

// forTokens is the number of blocks n tokens need.
func (b *blocks) forTokens(n int) int { return (n + b.size - 1) / b.size }

// take appends k blocks to table, or returns false (taking none) when
// fewer are free.
func (b *blocks) take(table []int32, k int) ([]int32, bool) {
	if k > len(b.free) {
		return table, false
	}
	for range k {
		table = append(table, b.free[len(b.free)-1])
		b.free = b.free[:len(b.free)-1]
	}
	return table, true
}

// release returns table's blocks.
func (b *blocks) release(table []int32) {
	b.free = append(b.free, table...)
}

// Free is the number of free blocks.
func (b *blocks) Free() int { return len(b.free) }
