package worker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
)

// maxDeliveriesAdvisory is the server's advisory subject prefix for a
// message that reached its consumer's MaxDeliver.
const maxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// watchExhausted handles jobs the server will deliver no more, on a
// consumer with a MaxDeliver of its own (one Gearbox did not provision: the
// consumers it provisions redeliver without limit and workers count). Every
// worker receives the advisory; each answers the job with an internal error
// result and a dead letter (duplicates are dropped by their message ids) and
// deletes it from the job stream. It is a fallback: an advisory sent while
// no worker listens is lost.
func (w *Worker) watchExhausted(ctx context.Context) (*nats.Subscription, error) {
	subj := maxDeliveriesAdvisory + "." + w.cfg.Subjects.JobsStream() + "." + w.cfg.Subjects.Consumer()
	return w.nc.Subscribe(subj, func(m *nats.Msg) {
		var adv struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries uint64 `json:"deliveries"`
		}
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			return
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := w.deadLetterExhausted(actx, adv.StreamSeq, adv.Deliveries); err != nil {
			w.log.Warn().Err(err).Uint64("seq", adv.StreamSeq).Msg("dead-letter job past max deliveries")
		}
	})
}

func (w *Worker) deadLetterExhausted(ctx context.Context, seq, deliveries uint64) error {
	stream, err := w.js.Stream(ctx, w.cfg.Subjects.JobsStream())
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // another worker got there first
	}
	if err != nil {
		return err
	}
	t := &task{seq: seq, token: raw.Subject[strings.LastIndexByte(raw.Subject, '.')+1:]}
	// The bounded decoder: whatever the payload, this reads at most its id
	// and meta, in memory bounded by its size.
	t.enc, _ = gearbox.ParseEncoding(raw.Header)
	t.job, _ = gearbox.DecodeJob(raw.Data, t.enc)
	e := gearbox.Errorf(gearbox.CodeInternal, "job was delivered %d times and never answered (a worker died on it, or its result could not be stored); gave up", deliveries)
	res, err := gearbox.NewMsg(w.cfg.Subjects.Results(t.modelToken()), w.errorResult(t, e), t.enc)
	if err != nil {
		return err
	}
	res.Header.Set(jetstream.MsgIDHeader, t.resultID())
	dead := deadLetter(w.cfg.Subjects.Dead(t.modelToken()), raw.Data, raw.Header, t.resultID(), e)
	for _, m := range []*nats.Msg{dead, res} {
		if _, err := w.js.PublishMsg(ctx, m); err != nil {
			return err
		}
	}
	w.log.Error().Str("job", t.id()).Uint64("seq", seq).Uint64("deliveries", deliveries).Msg("job dead-lettered after max deliveries")
	if w.met != nil {
		w.met.failed.WithLabelValues(t.modelToken(), string(e.Code)).Inc()
	}
	if err := stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return nil
}
