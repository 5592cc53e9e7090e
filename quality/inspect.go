package quality

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
)

// Inspect replays model's quality reports through a controller with rules,
// as every worker's controller does, and returns its view: the policy in
// force (the stored one, or the manifest's while there is none), why it
// holds, the windows since the policy took effect, and any change the
// replay made that the KV does not hold. It returns false when the model
// has neither a stored policy nor a report. The view is the workers' when
// rules are theirs (the same GEARBOX_QUALITY_* settings).
func Inspect(ctx context.Context, js jetstream.JetStream, s gearbox.Subjects, kv jetstream.KeyValue, model string, rules Rules) (Status, bool, error) {
	ctl, err := NewController(rules)
	if err != nil {
		return Status{}, false, err
	}
	stored, ok, err := readPolicy(ctx, kv, model)
	if err != nil {
		return Status{}, false, err
	}
	stream, err := js.Stream(ctx, s.QualityStream())
	if err != nil {
		return Status{}, false, fmt.Errorf("stream %s: %w", s.QualityStream(), err)
	}
	var policies []PolicyEntry
	if ok {
		policies = append(policies, stored)
	}
	first := max(stream.CachedInfo().State.FirstSeq, 1)
	ctl.Replay(first, policies)
	last, err := stream.GetLastMsgForSubject(ctx, s.Quality(model))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		st, known := ctl.Status(model)
		return st, known, nil
	}
	if err != nil {
		return Status{}, false, fmt.Errorf("last report of %s: %w", model, err)
	}
	var pending []gearbox.PrecisionPolicy
	if from := max(ctl.Position(model)+1, first); from <= last.Sequence {
		cons, err := js.OrderedConsumer(ctx, s.QualityStream(), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{s.Quality(model)},
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    from,
		})
		if err != nil {
			return Status{}, false, fmt.Errorf("consumer on %s: %w", s.QualityStream(), err)
		}
		it, err := cons.Messages()
		if err != nil {
			return Status{}, false, err
		}
		defer it.Stop()
		for seq := uint64(0); seq < last.Sequence; {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				return Status{}, false, fmt.Errorf("replay %s: %w", s.Quality(model), err)
			}
			rec, err := decodeReport(m, s)
			seq = rec.seq
			if err != nil {
				continue // every controller skips it
			}
			if d := ctl.Observe(rec.seq, rec.at, rec.r); d != nil {
				pending = append(pending, d.Policy)
			}
		}
	}
	st, known := ctl.Status(model)
	st.Pending = pending
	return st, known, nil
}
