package worker

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Poison jobs. A job that kills its worker (a crash no recover catches: a
// driver fault, the kernel's OOM killer) comes back to another worker, with
// every other job the dead worker held. Left alone it would kill worker
// after worker, and each death would count against the deliveries of the
// good jobs prefetched beside it.
//
// So a job on its second or later delivery runs in a batch of its own
// (batcher.Key.Isolate), and before it runs, the worker records the attempt
// in the attempts bucket, keyed by its stream sequence. A job whose isolated
// attempts already reached poisonAttempts, none of which ended in an answer,
// is answered with an internal error and dead-lettered without running
// again. Deaths of workers that merely held a job (in a prefetch buffer or
// a queue) count nothing against it there; only its own deliveries grow,
// and the backstop for those is giveUpFactor × MaxDeliver.
const (
	poisonAttempts = 2
	giveUpFactor   = 4
)

// attempts is the attempts bucket.
type attempts struct {
	kv jetstream.KeyValue
}

// start records one more isolated attempt of the job at stream sequence
// seq and returns how many came before it.
func (a attempts) start(ctx context.Context, seq uint64) (int, error) {
	key := strconv.FormatUint(seq, 10)
	for {
		e, err := a.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err := a.kv.Create(ctx, key, []byte("1")); errors.Is(err, jetstream.ErrKeyExists) {
				continue // another worker recorded one first: count again
			} else if err != nil {
				return 0, err
			}
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		prior, _ := strconv.Atoi(string(e.Value()))
		if _, err := a.kv.Update(ctx, key, []byte(strconv.Itoa(prior+1)), e.Revision()); errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return 0, err
		}
		return prior, nil
	}
}

// forget deletes the record of seq once its job is answered.
func (a attempts) forget(ctx context.Context, seq uint64) error {
	err := a.kv.Purge(ctx, strconv.FormatUint(seq, 10))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}
