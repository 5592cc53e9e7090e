package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
)

// Answer is one message stored in the result or the dead-letter stream.
type Answer struct {
	Seq     uint64
	Subject string
	// MsgID is the Nats-Msg-Id: the job id (dead letters: "dead-" and the
	// job id), or for a job whose id is not known, gearbox-seq-<its
	// sequence in the job stream>.
	MsgID  string
	Header nats.Header
	// Result is the decoded result (result stream only).
	Result *gearbox.Result
}

// Account is what a deployment's streams hold once a drill is over.
type Account struct {
	Results []Answer
	Dead    []Answer
	// JobsLeft is the number of jobs still in the job stream.
	JobsLeft uint64
}

// ReadAccount reads the result and dead-letter streams of s from start to
// end, and counts the jobs left. Read it once the workers have stopped, so
// nothing is added meanwhile.
func ReadAccount(ctx context.Context, js jetstream.JetStream, s gearbox.Subjects) (*Account, error) {
	a := &Account{}
	err := readStream(ctx, js, s.ResultsStream(), func(m jetstream.Msg, seq uint64) error {
		r, err := gearbox.DecodeResult(m.Data(), gearbox.EncodingOf(m.Headers()))
		if err != nil {
			return fmt.Errorf("result %d on %s: %w", seq, m.Subject(), err)
		}
		a.Results = append(a.Results, Answer{Seq: seq, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Header: m.Headers(), Result: r})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readStream(ctx, js, s.DeadStream(), func(m jetstream.Msg, seq uint64) error {
		a.Dead = append(a.Dead, Answer{Seq: seq, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Header: m.Headers()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	jobs, err := streamInfo(ctx, js, s.JobsStream())
	if err != nil {
		return nil, err
	}
	a.JobsLeft = jobs.State.Msgs
	return a, nil
}

// readStream calls fn on every message of stream, in order, up to the last
// one stored when it starts.
func readStream(ctx context.Context, js jetstream.JetStream, stream string, fn func(jetstream.Msg, uint64) error) error {
	info, err := streamInfo(ctx, js, stream)
	if err != nil || info.State.Msgs == 0 {
		return err
	}
	last := info.State.LastSeq
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("chaos: read %s: %w", stream, err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("chaos: read %s: %w", stream, err)
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("chaos: read %s: %w", stream, err)
			}
			if err := fn(m, meta.Sequence.Stream); err != nil {
				return err
			}
			if meta.Sequence.Stream >= last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("chaos: read %s: %w", stream, err)
		}
	}
	return ctx.Err()
}

// streamInfo asks for a stream's info, retrying while the server or the
// stream's leader is not answering yet (after a restart or an election).
func streamInfo(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	var err error
	for ctx.Err() == nil {
		// Each attempt has its own timeout: a request sent to a leader
		// that died is never answered.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var s jetstream.Stream
		var info *jetstream.StreamInfo
		if s, err = js.Stream(actx, stream); err == nil {
			info, err = s.Info(actx)
		}
		cancel()
		if err == nil {
			return info, nil
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return nil, fmt.Errorf("chaos: stream %s: %w", stream, errors.Join(err, ctx.Err()))
}

// Tally is the account of a set of jobs that should each have exactly one
// successful result.
type Tally struct {
	Jobs int
	// Answered counts jobs with at least one result.
	Answered int
	// Lost are ids with no result; Duplicated ids with more than one
	// stored; Failed ids whose result is an error; Strangers results for
	// ids not in the set.
	Lost, Duplicated, Failed, Strangers []string
	// DeadLetters and JobsLeft should be 0.
	DeadLetters int
	JobsLeft    uint64
}

// Tally accounts for ids: every one should have exactly one result, and
// that a success, with no dead letter and no job left.
func (a *Account) Tally(ids []string) Tally {
	t := Tally{Jobs: len(ids), DeadLetters: len(a.Dead), JobsLeft: a.JobsLeft}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	seen := make(map[string]int, len(ids))
	for _, r := range a.Results {
		id := r.Result.ID
		if !want[id] {
			t.Strangers = append(t.Strangers, fmt.Sprintf("%s (msg id %s)", id, r.MsgID))
			continue
		}
		seen[id]++
		switch {
		case seen[id] == 1:
			t.Answered++
			if r.Result.Error != nil {
				t.Failed = append(t.Failed, id+": "+r.Result.Error.Error())
			}
		case seen[id] == 2:
			t.Duplicated = append(t.Duplicated, id)
		}
	}
	for _, id := range ids {
		if seen[id] == 0 {
			t.Lost = append(t.Lost, id)
		}
	}
	return t
}

func (t Tally) String() string {
	return fmt.Sprintf("%d of %d jobs answered: lost %d, duplicated %d, failed %d, strangers %d, dead letters %d, jobs left %d",
		t.Answered, t.Jobs, len(t.Lost), len(t.Duplicated), len(t.Failed), len(t.Strangers), t.DeadLetters, t.JobsLeft)
}

// Err says what is wrong with t, or nil when every job has exactly one
// successful result, no stranger, no dead letter and no job left.
func (t Tally) Err() error {
	var why []string
	list := func(what string, ids []string) {
		if len(ids) > 0 {
			why = append(why, fmt.Sprintf("%d %s (first: %s)", len(ids), what, strings.Join(ids[:min(len(ids), 5)], "; ")))
		}
	}
	list("lost", t.Lost)
	list("duplicated", t.Duplicated)
	list("answered with an error", t.Failed)
	list("results for unknown ids", t.Strangers)
	if t.DeadLetters > 0 {
		why = append(why, fmt.Sprintf("%d dead letters", t.DeadLetters))
	}
	if t.JobsLeft > 0 {
		why = append(why, fmt.Sprintf("%d jobs left in the job stream", t.JobsLeft))
	}
	if len(why) == 0 {
		return nil
	}
	slices.Sort(why)
	return fmt.Errorf("of %d jobs: %s", t.Jobs, strings.Join(why, ", "))
}

// WaitDrained waits until the job stream is empty and the shared consumer
// has nothing pending or awaiting an ack: every job has been answered (an
// answer is stored before its job is acked). It retries through server
// restarts and elections, and on ctx's end returns the last state seen.
func WaitDrained(ctx context.Context, js jetstream.JetStream, s gearbox.Subjects) error {
	var last error
	for {
		last = drained(ctx, js, s)
		if last == nil {
			return nil
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("chaos: not drained: %w", last)
		}
	}
}

func drained(ctx context.Context, js jetstream.JetStream, s gearbox.Subjects) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := js.Stream(rctx, s.JobsStream())
	if err != nil {
		return err
	}
	info, err := st.Info(rctx)
	if err != nil {
		return err
	}
	cons, err := st.Consumer(rctx, s.Consumer())
	if err != nil {
		return err
	}
	ci, err := cons.Info(rctx)
	if err != nil {
		return err
	}
	if info.State.Msgs > 0 || ci.NumPending > 0 || ci.NumAckPending > 0 {
		return fmt.Errorf("%d jobs in the stream, %d pending, %d awaiting an ack", info.State.Msgs, ci.NumPending, ci.NumAckPending)
	}
	return nil
}

// Deliveries is the number of deliveries the shared consumer has made,
// redeliveries included: less the jobs, about the number of jobs delivered
// again because a worker died holding them (or held them past AckWait).
// About: a server killed with SIGKILL can lose the consumer's last state
// updates and count from an earlier value.
func Deliveries(ctx context.Context, js jetstream.JetStream, s gearbox.Subjects) (uint64, error) {
	cons, err := js.Consumer(ctx, s.JobsStream(), s.Consumer())
	if err != nil {
		return 0, err
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return ci.Delivered.Consumer, nil
}
