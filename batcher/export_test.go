package batcher

import "time"

// SetNow replaces b's clock. Call it before Run and Add.
func SetNow(b *Batcher, now func() time.Time) { b.now = now }

// SetOnBlock makes b call f each time an Add is about to wait for room.
// Call it before Run and Add.
func SetOnBlock(b *Batcher, f func()) { b.onBlock = f }
