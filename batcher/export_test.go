package batcher

import "time"

// SetNow replaces b's clock. Call it before Run and Add.
func SetNow[T any](b *Batcher[T], now func() time.Time) { b.now = now }

// SetOnBlock makes b call f each time an Add is about to wait for room.
// Call it before Run and Add.
func SetOnBlock[T any](b *Batcher[T], f func()) { b.onBlock = f }
