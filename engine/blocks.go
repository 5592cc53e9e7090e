package engine

// blocks allocates a KV cache's blocks and keeps its prefix cache: full
// blocks entered under their key (prefix.go) with a reference count, so
// that sequences with a common prefix hold the same blocks. A block is
// free (in no table), pending (entered while its K/V is being written),
// ready (entered, written) and held, or cached (ready, held by none, on an
// LRU list, evicted when free blocks run out). It is not safe for
// concurrent use: the Scheduler owns one.
type blocks struct {
	free  []int32 // a stack: the most recently freed block is reused first
	size  int     // tokens per block
	n     int     // blocks in all
	ref   []int32 // references (block-table entries) per block
	state []blockState
	key   []blockKey
	table map[blockKey]int32 // the pending and ready blocks
	// The cached blocks, least recently released first: a doubly linked
	// list through prev and next, -1 ending it.
	prev, next []int32
	head, tail int32
	cached     int
	// onHeld, if set, is told when the block entered under a key becomes
	// held (a table takes it) or stops being held (Scheduler.onHeld).
	onHeld func(k blockKey, held bool)
}

type blockState uint8

const (
	unentered blockState = iota
	pending              // entered; its K/V not yet all written
	ready                // entered and written: shareable
)

func newBlocks(n, size int) *blocks {
	b := &blocks{free: make([]int32, n), size: size, n: n,
		ref: make([]int32, n), state: make([]blockState, n), key: make([]blockKey, n),
		table: map[blockKey]int32{}, prev: make([]int32, n), next: make([]int32, n), head: -1, tail: -1}
	for i := range n {
		b.free[i] = int32(n - 1 - i) // block 0 is handed out first
	}
	return b
}

// forTokens is the number of blocks n tokens need.
func (b *blocks) forTokens(n int) int { return (n + b.size - 1) / b.size }

// take appends k blocks to table, or returns false (taking none) when
// fewer are free. Never-cached blocks go first, then the least recently
// released cached ones, which leave the table.
func (b *blocks) take(table []int32, k int) ([]int32, bool) {
	if k > b.Free() {
		return table, false
	}
	for range k {
		var x int32
		if len(b.free) > 0 {
			x = b.free[len(b.free)-1]
			b.free = b.free[:len(b.free)-1]
		} else {
			x = b.head
			b.unlink(x)
			b.drop(x)
		}
		b.ref[x] = 1
		table = append(table, x)
	}
	return table, true
}

// release drops table's references, last block first (so that a chain's
// tail is evicted before its head): a ready block nobody holds is cached,
// a pending one leaves the table (its K/V may be half written).
func (b *blocks) release(table []int32) {
	for i := len(table) - 1; i >= 0; i-- {
		x := table[i]
		if b.ref[x]--; b.ref[x] > 0 {
			continue
		}
		if b.state[x] != unentered && b.onHeld != nil {
			b.onHeld(b.key[x], false)
		}
		if b.state[x] == ready {
			b.push(x)
			continue
		}
		b.drop(x)
		b.free = append(b.free, x)
	}
}

// lookup returns the entered block of key k and whether it is ready.
func (b *blocks) lookup(k blockKey) (x int32, isReady, ok bool) {
	x, ok = b.table[k]
	return x, ok && b.state[x] == ready, ok
}

// share adds a reference to the ready block x, taking it off the cached
// list.
func (b *blocks) share(x int32) {
	if b.ref[x] == 0 {
		b.unlink(x)
		if b.onHeld != nil {
			b.onHeld(b.key[x], true)
		}
	}
	b.ref[x]++
}

// enter enters the held block x under k, pending, unless x is entered
// already or k names another block (a sequence that computed the same
// prefix first): then x stays private.
func (b *blocks) enter(x int32, k blockKey) {
	if _, taken := b.table[k]; taken || b.state[x] != unentered {
		return
	}
	b.table[k], b.state[x], b.key[x] = x, pending, k
	if b.onHeld != nil {
		b.onHeld(k, true) // x is held: a table has it
	}
}

// seal marks the held block x, whose K/V is now written, ready under k:
// entering it first if it was not (a block filled by decoding).
func (b *blocks) seal(x int32, k blockKey) {
	b.enter(x, k)
	if b.state[x] == pending && b.key[x] == k {
		b.state[x] = ready
	}
}

// drop takes x out of the table.
func (b *blocks) drop(x int32) {
	if b.state[x] != unentered {
		delete(b.table, b.key[x])
		b.state[x] = unentered
	}
}

// push appends x to the cached list.
func (b *blocks) push(x int32) {
	b.prev[x], b.next[x] = b.tail, -1
	if b.tail >= 0 {
		b.next[b.tail] = x
	} else {
		b.head = x
	}
	b.tail = x
	b.cached++
}

// unlink takes x off the cached list.
func (b *blocks) unlink(x int32) {
	if p := b.prev[x]; p >= 0 {
		b.next[p] = b.next[x]
	} else {
		b.head = b.next[x]
	}
	if n := b.next[x]; n >= 0 {
		b.prev[n] = b.prev[x]
	} else {
		b.tail = b.prev[x]
	}
	b.cached--
}

// Free is the number of blocks that take can hand out: never-cached and
// cached.
func (b *blocks) Free() int { return len(b.free) + b.cached }

// Held is the number of blocks some block table holds.
func (b *blocks) Held() int { return b.n - b.Free() }
