package worker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
)

// Every job leaves the worker through end: it publishes the job's answer,
// and once the answer is stored, settle replies, acks or terminates the
// message and stops tracking it. Nothing else publishes an answer, acks or
// untracks.

// ending is how a job leaves the worker.
type ending struct {
	// result is published to the result stream (and the job's reply_to)
	// before the job is settled. Nil only for a retry.
	result *gearbox.Result
	// dead, when set, also publishes the job's payload to the dead-letter
	// stream with this reason, and the job is terminated; otherwise it is
	// acked.
	dead *gearbox.Error
	// retryIn, for an ending with no result, asks for the job again after
	// this delay (NakWithDelay): nothing is published.
	retryIn time.Duration
}

// errorEnding maps an error to how the job ends. This is the one place that
// maps error codes to JetStream actions:
//
//   - expired: error result, ack (the job was handled; it is not invalid);
//   - internal: redeliver after a delay (no result) until the job's last
//     delivery, then error result, dead letter and Term;
//   - bad_request, unknown_model, shape_mismatch, too_large: error result,
//     dead letter with the original payload and the reason, Term.
func (w *Worker) errorEnding(t *task, e *gearbox.Error) ending {
	if e.Code == gearbox.CodeInternal && t.delivered < uint64(w.maxDeliver) {
		return ending{retryIn: time.Duration(t.delivered) * time.Second}
	}
	r := w.errorResult(t, e)
	if e.Code == gearbox.CodeExpired {
		return ending{result: r}
	}
	return ending{result: r, dead: e}
}

// giveUp ends t with an internal error whatever its delivery count: for
// jobs judged to kill workers.
func (w *Worker) giveUp(t *task, e *gearbox.Error) ending {
	return ending{result: w.errorResult(t, e), dead: e}
}

func (w *Worker) errorResult(t *task, e *gearbox.Error) *gearbox.Result {
	r := &gearbox.Result{ID: t.id(), Worker: w.cfg.Name, Error: e}
	if gearbox.ValidToken(t.token) == nil {
		r.Model = t.token
	}
	if t.job != nil {
		r.Meta = t.job.Meta
	}
	return r
}

// pending is a job whose answer is being published; it is settled once
// every publish is acknowledged by its stream.
type pending struct {
	t       *task
	e       ending
	msgs    []*nats.Msg
	futures []jetstream.PubAckFuture // nil where the async publish failed
}

// end ends t as e says. A retry is settled at once; an answer is published
// and handed to the ack loop, which settles it when it is stored. t's
// model version is released first: nothing runs it for t any more.
func (w *Worker) end(ctx context.Context, t *task, e ending) {
	w.releaseModel(t)
	if e.result == nil {
		w.log.Warn().Str("job", t.id()).Uint64("seq", t.seq).Uint64("delivery", t.delivered).
			Dur("retry_in", e.retryIn).Str("error", errText(t.err)).Msg("job failed; redelivering")
		w.nak(t, e.retryIn)
		return
	}
	if e.dead != nil {
		w.log.Info().Str("job", t.id()).Uint64("seq", t.seq).Str("subject", t.msg.Subject()).
			Str("code", string(e.dead.Code)).Str("error", e.dead.Message).Msg("job rejected")
	}
	p := &pending{t: t, e: e}
	rm, err := gearbox.NewMsg(w.cfg.Subjects.Results(t.modelToken()), e.result, t.enc)
	if err != nil { // our own types always encode; never lose the job if not
		w.log.Error().Err(err).Str("job", t.id()).Msg("encode result")
		w.nak(t, time.Second)
		return
	}
	rm.Header.Set(jetstream.MsgIDHeader, t.resultID())
	p.msgs = append(p.msgs, rm)
	if e.dead != nil {
		p.msgs = append(p.msgs, deadLetter(w.cfg.Subjects.Dead(t.modelToken()), t.msg.Data(), t.msg.Headers(), t.resultID(), e.dead))
	}
	for _, m := range p.msgs {
		f, err := w.js.PublishMsgAsync(m)
		if err != nil {
			w.log.Debug().Err(err).Str("subject", m.Subject).Msg("async publish; will retry")
			f = nil
		}
		p.futures = append(p.futures, f)
	}
	select {
	case w.acks <- p:
	case <-ctx.Done():
	}
}

// releaseModel ends t's use of its model version, which may evict a
// version that was replaced meanwhile (see Models). It is called as t
// ends, or is dropped by a hard stop; later calls do nothing. It runs on
// the goroutine that holds t: its decoder or the adder before t reaches
// the batcher, the executor's finish stage or an encoder after.
func (w *Worker) releaseModel(t *task) {
	if t.model != nil && !t.released {
		t.released = true
		w.models.release(t.model)
	}
}

// nak asks for t again after delay, and stops tracking it.
func (w *Worker) nak(t *task, delay time.Duration) {
	if err := t.msg.NakWithDelay(delay); err != nil {
		w.log.Warn().Err(err).Str("job", t.id()).Msg("nak")
	}
	w.untrack(t)
}

// ackLoop settles published answers as their publishes are acknowledged.
// An answer whose publish failed is retried on a goroutine of its own, so
// one failing publish (the result stream unavailable, say) holds up no
// other job: they all retry at once, and all recover together.
func (w *Worker) ackLoop(ctx context.Context) {
	for p := range w.acks {
		failed := -1
		var cause error
		for i, f := range p.futures {
			if f == nil {
				failed, cause = i, errNotSent
				break
			}
			w.ackWaiting.Store(w.nowFn().UnixNano())
			select {
			case <-f.Ok():
				w.ackWaiting.Store(0)
				continue
			case cause = <-f.Err():
				w.ackWaiting.Store(0)
			case <-ctx.Done():
				return
			}
			failed = i
			break
		}
		if failed < 0 {
			w.settle(ctx, p, true)
			continue
		}
		select {
		case w.retrySlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		w.retrying.Go(func() {
			defer func() { <-w.retrySlots }()
			w.settle(ctx, p, w.republish(ctx, p, failed, cause))
		})
	}
}

// errNotSent marks a publish whose async attempt failed before it left.
var errNotSent = errors.New("async publish not sent")

// republish publishes p's messages from the failed one on, synchronously,
// with their Nats-Msg-Id (so a publish that did land is not stored twice),
// backing off between attempts. It reports whether all were stored.
func (w *Worker) republish(ctx context.Context, p *pending, from int, cause error) bool {
	if w.met != nil {
		w.met.retrying.Inc()
		defer w.met.retrying.Dec()
	}
	backoff := 100 * time.Millisecond
	for _, m := range p.msgs[from:] {
		if attempts, err := PublishStored(ctx, w.js, m, &backoff); err != nil {
			w.log.Warn().Err(err).AnErr("cause", cause).Str("subject", m.Subject).Int("attempts", attempts).Msg("publish failed")
			return false
		}
	}
	return true
}

// PublishStored publishes m synchronously until the stream has stored it,
// as a worker publishes an answer whose asynchronous publish failed: up to
// publishAttempts attempts of 5 s each, backing off *backoff between them
// (doubled after each wait, to at most 2 s; shared by the messages of one
// answer). It returns the attempts made and, if none stored m, the last
// error (ctx's, if it ended first). m should carry a Nats-Msg-Id, so that
// an attempt that did land is not stored twice.
func PublishStored(ctx context.Context, js jetstream.JetStream, m *nats.Msg, backoff *time.Duration) (int, error) {
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			return attempt, nil
		}
		if ctx.Err() != nil || attempt == publishAttempts {
			return attempt, err
		}
		select {
		case <-time.After(*backoff):
		case <-ctx.Done():
			return attempt, ctx.Err()
		}
		*backoff = min(*backoff*2, 2*time.Second)
	}
}

// publishAttempts is how often an answer's publish is tried before its job
// is handed back for redelivery.
const publishAttempts = 6

// settle acks or terminates a job whose answer is stored, or, when it could
// not be stored, asks for it again.
func (w *Worker) settle(ctx context.Context, p *pending, stored bool) {
	t := p.t
	if ctx.Err() != nil {
		return // hard stop: settle nothing; the job is redelivered
	}
	if !stored {
		w.log.Error().Str("job", t.id()).Uint64("seq", t.seq).Msg("answer not stored; the job will be redelivered")
		w.nak(t, 2*time.Second)
		return
	}
	defer w.untrack(t)
	if t.replyTo != "" {
		reply := &nats.Msg{Subject: t.replyTo, Data: p.msgs[0].Data, Header: nats.Header{gearbox.HeaderContentType: p.msgs[0].Header[gearbox.HeaderContentType]}}
		replyHeaders(t, reply)
		if err := w.nc.PublishMsg(reply); err != nil {
			w.log.Warn().Err(err).Str("job", t.id()).Msg("reply")
		}
	}
	var err error
	if p.e.dead != nil {
		err = t.msg.TermWithReason(string(p.e.dead.Code) + ": " + p.e.dead.Message)
	} else {
		err = t.msg.Ack()
	}
	if err != nil {
		// The answer is stored; a redelivery is answered again and the
		// duplicate is dropped by its Nats-Msg-Id.
		w.log.Warn().Err(err).Str("job", t.id()).Msg("ack")
	}
	if t.isolated {
		if err := w.attempts.forget(ctx, t.seq); err != nil {
			w.log.Debug().Err(err).Uint64("seq", t.seq).Msg("forget attempts")
		}
	}
	if w.met == nil {
		return
	}
	if e := p.e.result.Error; e != nil {
		w.met.failed.WithLabelValues(t.modelToken(), string(e.Code)).Inc()
	} else {
		w.met.completed.WithLabelValues(t.modelName(), string(p.e.result.Precision)).Inc()
	}
}

// deadLetter is a job's original payload and headers, addressed to subject
// with its reason in the Gearbox-Error-Code and Gearbox-Error headers.
// The job's Nats-* headers are dropped: they are instructions to the server
// (an expected stream or sequence, a TTL) that would make the dead letter's
// own publish fail, or do something else.
func deadLetter(subject string, data []byte, h nats.Header, id string, e *gearbox.Error) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	for k, v := range h {
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			continue
		}
		m.Header[k] = v
	}
	m.Header.Set(jetstream.MsgIDHeader, "dead-"+id)
	m.Header.Set(gearbox.HeaderErrorCode, string(e.Code))
	m.Header.Set(gearbox.HeaderError, strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, e.Message))
	return m
}

func errText(e *gearbox.Error) string {
	if e == nil {
		return ""
	}
	return e.Message
}
