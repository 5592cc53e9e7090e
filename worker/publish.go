package worker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
)

// errNotSent marks a publish whose async attempt failed before it left.
var errNotSent = errors.New("async publish not sent")

// action is what happens to a job message once its answer is stored.
type action int

const (
	actAck  action = iota // answered: remove it from the work queue
	actTerm               // invalid or given up: never redeliver
)

// pending is a job whose answer is being published; the ack loop settles
// it once every publish is acknowledged by its stream.
type pending struct {
	t       *task
	msgs    []*nats.Msg
	futures []jetstream.PubAckFuture // nil where the async publish failed
	reply   *nats.Msg                // to the job's reply_to, sent once stored
	act     action
	reason  string // for Term
	result  *gearbox.Result
}

// answer publishes an error result for t and settles its message as the
// error's code demands. This is the one place that maps error codes to
// JetStream actions:
//
//   - expired: error result, ack (the job was handled; it is not invalid);
//   - internal: redeliver after a delay (NakWithDelay, no result) until the
//     last delivery, then error result, dead letter and Term;
//   - bad_request, unknown_model, shape_mismatch, too_large: error result,
//     dead letter with the original payload and the reason, Term.
func (w *Worker) answer(ctx context.Context, t *task, e *gearbox.Error) {
	if e.Code == gearbox.CodeInternal && t.delivered < uint64(w.maxDeliver) {
		delay := time.Duration(t.delivered) * time.Second
		w.log.Warn().Str("job", t.id()).Uint64("delivery", t.delivered).Str("error", e.Message).Msg("job failed; redelivering")
		if err := t.msg.NakWithDelay(delay); err != nil {
			w.log.Warn().Err(err).Str("job", t.id()).Msg("nak")
		}
		w.untrack(t)
		return
	}
	r := &gearbox.Result{ID: t.id(), Model: t.subject, Worker: w.cfg.Name, Error: e}
	if t.job != nil {
		r.Meta = t.job.Meta
	}
	if e.Code == gearbox.CodeExpired {
		w.publish(ctx, t, r, nil)
		return
	}
	w.log.Info().Str("job", t.id()).Str("subject", t.msg.Subject()).Str("code", string(e.Code)).
		Str("error", e.Message).Msg("job rejected")
	w.publish(ctx, t, r, e)
}

// publish sends r to the result stream (with Nats-Msg-Id = the job id) and,
// when dead is set, the original job to the dead-letter stream; the ack loop
// then acks (or, for dead letters, terminates) the job.
func (w *Worker) publish(ctx context.Context, t *task, r *gearbox.Result, dead *gearbox.Error) {
	p := &pending{t: t, result: r, act: actAck}
	id := msgID(t.id(), t.seq)
	rm, err := gearbox.NewMsg(w.cfg.Subjects.Results(t.subject), r, t.enc)
	if err != nil { // cannot happen for our own types; never lose the job
		w.log.Error().Err(err).Str("job", id).Msg("encode result")
		_ = t.msg.NakWithDelay(time.Second)
		w.untrack(t)
		return
	}
	rm.Header.Set(jetstream.MsgIDHeader, id)
	p.msgs = append(p.msgs, rm)
	if t.job != nil && t.job.ReplyTo != "" {
		p.reply = &nats.Msg{Subject: t.job.ReplyTo, Data: rm.Data, Header: nats.Header{gearbox.HeaderContentType: rm.Header[gearbox.HeaderContentType]}}
	}
	if dead != nil {
		p.msgs = append(p.msgs, deadLetter(w.cfg.Subjects.Dead(t.subject), t.msg.Data(), t.msg.Headers(), id, dead))
		p.act, p.reason = actTerm, string(dead.Code)+": "+dead.Message
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

// ackLoop settles published answers in order: each job is acked only after
// its result (and dead letter) is stored.
func (w *Worker) ackLoop(ctx context.Context) {
	for p := range w.acks {
		stored := true
		for i, f := range p.futures {
			var err error
			if f == nil {
				err = errNotSent
			} else {
				select {
				case <-f.Ok():
					continue
				case err = <-f.Err():
				case <-ctx.Done():
					return
				}
			}
			if !w.republish(ctx, p.msgs[i], err) {
				stored = false
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		w.settle(p, stored)
	}
}

// republish retries a publish whose async attempt failed, synchronously,
// with the same Nats-Msg-Id (so a publish that did land is not stored
// twice).
func (w *Worker) republish(ctx context.Context, m *nats.Msg, cause error) bool {
	backoff := 50 * time.Millisecond
	for attempt := 1; attempt <= 4; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := w.js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.log.Warn().Err(err).AnErr("cause", cause).Str("subject", m.Subject).Int("attempt", attempt).Msg("publish failed")
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false
		}
		backoff *= 2
	}
	return false
}

// settle acks or terminates a job whose answer is stored, or, when it could
// not be stored, asks for redelivery.
func (w *Worker) settle(p *pending, stored bool) {
	t := p.t
	defer w.untrack(t)
	if !stored {
		w.log.Error().Str("job", t.id()).Msg("result not stored; job will be redelivered")
		_ = t.msg.NakWithDelay(2 * time.Second)
		return
	}
	if p.reply != nil {
		if err := w.nc.PublishMsg(p.reply); err != nil {
			w.log.Warn().Err(err).Str("job", t.id()).Msg("reply")
		}
	}
	var err error
	switch p.act {
	case actAck:
		err = t.msg.Ack()
	case actTerm:
		err = t.msg.TermWithReason(p.reason)
	}
	if err != nil {
		// The result is stored; a redelivery is answered again and the
		// duplicate result is dropped by its Nats-Msg-Id.
		w.log.Warn().Err(err).Str("job", t.id()).Msg("ack")
	}
	if w.met == nil {
		return
	}
	if e := p.result.Error; e != nil {
		label := "_unknown"
		if t.model != nil {
			label = t.model.Name
		}
		w.met.failed.WithLabelValues(label, string(e.Code)).Inc()
	} else {
		w.met.completed.WithLabelValues(t.model.Name, string(p.result.Precision)).Inc()
	}
}

// deadLetter is a job's original payload and headers, addressed to subject
// with its reason in the Gearbox-Error-Code and Gearbox-Error headers.
func deadLetter(subject string, data []byte, h nats.Header, id string, e *gearbox.Error) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	for k, v := range h {
		m.Header[k] = v
	}
	m.Header.Set(jetstream.MsgIDHeader, "dead-"+id)
	m.Header.Set(gearbox.HeaderErrorCode, string(e.Code))
	m.Header.Set(gearbox.HeaderError, e.Message)
	return m
}
