package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
)

// submitWindow is the most publishes submit has in flight (sent, not yet
// acknowledged by the stream): far below nats.go's own limit of 4,000, so
// a publish never stalls on it.
const submitWindow = 256

// submission publishes jobs asynchronously and, when wait is set, collects
// their results by reply subject, printing each as it arrives.
//
// Goroutines: run's publishes the jobs; ack reads the stream's
// acknowledgements in publishing order; collect counts and prints; the
// subscription's handler decodes results. Every event reaches collect
// through one channel, and a job's "sent" is queued before the job is
// published, so it always precedes the job's result.
type submission struct {
	nc     *nats.Conn
	client *gearbox.Client
	wait   bool
	out    io.Writer // results
	errs   io.Writer // notes

	// Counts, final once run returns.
	sent, dups, received, failed int
}

// event is one thing the collector learns.
type event struct {
	kind   eventKind
	token  string // the job's reply token (its sequence number)
	id     string
	dup    bool
	result *gearbox.Result
	err    error
}

type eventKind int

const (
	evSent   eventKind = iota // queued for publishing
	evAcked                   // stored (or a duplicate) by the stream
	evResult                  // its result arrived
	evDone                    // every job is published and acknowledged
)

// run publishes every job next yields and, with wait, returns once each
// has its result; it fails on the first publish the stream refuses.
func (s *submission) run(ctx context.Context, next func() (*gearbox.Job, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	events := make(chan event, 2*submitWindow)
	var inbox string
	if s.wait {
		inbox = s.nc.NewInbox()
		sub, err := s.nc.Subscribe(inbox+".*", func(m *nats.Msg) {
			r, err := gearbox.DecodeResult(m.Data, gearbox.EncodingOf(m.Header))
			select {
			case events <- event{kind: evResult, token: m.Subject[len(inbox)+1:], result: r, err: err}:
			case <-ctx.Done():
			}
		})
		if err != nil {
			return err
		}
		// Every message is a result asked for: never drop one as a slow
		// consumer.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return err
		}
		defer sub.Unsubscribe()
	}

	inflight := make(chan inflight, submitWindow)
	go s.ack(ctx, cancel, inflight, events)

	collected := make(chan error, 1)
	go func() { collected <- s.collect(ctx, events) }()

	err := s.publish(ctx, next, inbox, inflight, events)
	close(inflight)
	if err != nil {
		cancel(err)
	}
	return <-collected
}

// inflight is a published job awaiting the stream's acknowledgement.
type inflight struct {
	e event
	f jetstream.PubAckFuture
}

// publish sends each job, queueing its "sent" event first.
func (s *submission) publish(ctx context.Context, next func() (*gearbox.Job, error), inbox string, acks chan<- inflight, events chan<- event) error {
	for n := 1; ; n++ {
		j, err := next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		e := event{kind: evSent, token: strconv.Itoa(n), id: j.ID}
		if s.wait {
			jj := *j
			jj.ReplyTo = inbox + "." + e.token
			j = &jj
		}
		select {
		case events <- e:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		f, err := s.client.SubmitAsync(j)
		if err != nil {
			return fmt.Errorf("job %q: %w", j.ID, err)
		}
		select {
		case acks <- inflight{e, f}: // blocks while submitWindow publishes are in flight
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// ack reads the stream's acknowledgements in publishing order; the first
// refusal cancels the submission.
func (s *submission) ack(ctx context.Context, cancel context.CancelCauseFunc, acks <-chan inflight, events chan<- event) {
	send := func(e event) {
		select {
		case events <- e:
		case <-ctx.Done():
		}
	}
	for p := range acks {
		e := p.e
		select {
		case ack := <-p.f.Ok():
			e.kind, e.dup = evAcked, ack.Duplicate
			send(e)
		case err := <-p.f.Err():
			cancel(fmt.Errorf("job %q: %w", e.id, err))
			return
		case <-ctx.Done():
			return
		}
	}
	send(event{kind: evDone})
}

// collect follows the events until every job is acknowledged and, with
// wait, answered (or a duplicate, whose result will not come).
func (s *submission) collect(ctx context.Context, events <-chan event) error {
	waiting := map[string]string{} // token → job id
	published := false
	for {
		if published && len(waiting) == 0 {
			return nil
		}
		var e event
		select {
		case e = <-events:
		case <-ctx.Done():
			err := context.Cause(ctx)
			if errors.Is(err, context.Canceled) && len(waiting) > 0 {
				err = fmt.Errorf("interrupted with %d of %d results still to come", len(waiting), s.sent)
			}
			return err
		}
		switch e.kind {
		case evSent:
			s.sent++
			if s.wait {
				waiting[e.token] = e.id
			}
		case evAcked:
			if e.dup {
				s.dups++
				if _, ok := waiting[e.token]; ok {
					delete(waiting, e.token)
					fmt.Fprintf(s.errs, "job %q: a duplicate of a job published within the stream's duplicate window; its result will not come again\n", e.id)
				}
			}
		case evResult:
			id, ok := waiting[e.token]
			if !ok {
				continue // a second reply, or one for another submission
			}
			delete(waiting, e.token)
			s.received++
			if e.err != nil {
				s.failed++
				fmt.Fprintf(s.errs, "job %q: undecodable result: %v\n", id, e.err)
				continue
			}
			if e.result.Error != nil {
				s.failed++
			}
			printResult(s.out, e.result, false)
		case evDone:
			published = true
		}
	}
}
