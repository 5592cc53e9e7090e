package batcher

import "errors"

var (
	// ErrInvalidConfig is wrapped by the error Config.Validate, New and
	// NewQueue return for an unusable Config; the message names the field.
	ErrInvalidConfig = errors.New("batcher: invalid config")

	// ErrInvalidItem is wrapped by the error Batcher.Add returns for a nil
	// item, an item whose Rows is not positive, or an item already added.
	// Queue.Add panics with it: handing it such an item is a programming
	// error.
	ErrInvalidItem = errors.New("batcher: invalid item")

	// ErrClosed is returned by Batcher.Add once Close was called or Run
	// has stopped.
	ErrClosed = errors.New("batcher: closed")

	// ErrRunning is returned by Batcher.Run when Run was already called:
	// a Batcher runs once.
	ErrRunning = errors.New("batcher: Run called twice")
)
