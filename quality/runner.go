package quality

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// Runner runs a Controller against NATS: it replays GEARBOX_QUALITY in
// stream order through it, follows the policy bucket, writes decisions by
// compare-and-swap, and announces each change on gearbox.policy.<model>.
// Every worker may run one; they reach the same decisions and exactly one
// write lands per change. Each runner logs, and shows in its metrics, why
// the controller holds a model's precision whenever that changes.
type Runner struct {
	JS       jetstream.JetStream
	Subjects gearbox.Subjects
	KV       jetstream.KeyValue
	Rules    Rules
	// Name identifies the writer in PrecisionPolicy.By (the worker's name).
	Name    string
	Log     zerolog.Logger
	Metrics *Metrics
}

// received is one report read from the stream.
type received struct {
	seq uint64
	at  time.Time
	r   *gearbox.QualityReport
}

// decodeReport reads one report message. Every controller skips the same
// bad ones.
func decodeReport(m jetstream.Msg, s gearbox.Subjects) (received, error) {
	meta, err := m.Metadata()
	if err != nil {
		return received{}, err
	}
	rep, err := gearbox.DecodeQualityReport(m.Data(), gearbox.EncodingOf(m.Headers()))
	if err != nil {
		return received{seq: meta.Sequence.Stream}, err
	}
	if want := s.ModelOf(m.Subject()); rep.Model != want {
		return received{seq: meta.Sequence.Stream}, fmt.Errorf("report for %s on %s's subject %s", rep.Model, want, m.Subject())
	}
	return received{seq: meta.Sequence.Stream, at: meta.Timestamp, r: rep}, nil
}

// session is one Run: the controller, and the hold per model last logged.
type session struct {
	*Runner
	ctl  *Controller
	held map[string]Hold
}

// Run controls until ctx ends, when it returns ctx's error, or until it
// fails (the stream or the bucket is missing or unreachable), when it
// returns why; running it again starts afresh from the stored policies.
func (r *Runner) Run(ctx context.Context) error {
	ctl, err := NewController(r.Rules)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	current, updates, err := watchPolicies(ctx, r.KV, r.Log)
	if err != nil {
		return fmt.Errorf("quality controller: %w", err)
	}
	stream, err := r.JS.Stream(ctx, r.Subjects.QualityStream())
	if err != nil {
		return fmt.Errorf("quality controller: stream %s: %w", r.Subjects.QualityStream(), err)
	}
	var stored []PolicyEntry
	for _, u := range current {
		if !u.deleted {
			stored = append(stored, u.PolicyEntry)
			if r.Metrics != nil {
				r.Metrics.current(&u.PrecisionPolicy)
			}
		}
	}
	first := stream.CachedInfo().State.FirstSeq
	ctl.Replay(first, stored)
	s := &session{Runner: r, ctl: ctl, held: map[string]Hold{}}
	from := max(first, 1)
	for {
		replay, err := s.follow(ctx, updates, from)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		from = replay
		r.Log.Debug().Uint64("from", from).Msg("quality controller: replaying")
	}
}

// follow consumes reports from seq from on until ctx ends (returns 0, nil),
// a policy change requires an earlier replay (returns its sequence), or the
// consumer fails.
func (s *session) follow(ctx context.Context, updates <-chan policyUpdate, from uint64) (uint64, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := s.JS.OrderedConsumer(cctx, s.Subjects.QualityStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.Subjects.Quality("*")},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return 0, fmt.Errorf("quality controller: consumer on %s: %w", s.Subjects.QualityStream(), err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, fmt.Errorf("quality controller: %w", err)
	}
	defer it.Stop()
	msgs := make(chan received, 256)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return // stopped
			}
			rec, err := decodeReport(m, s.Subjects)
			if err != nil {
				s.Log.Warn().Err(err).Uint64("seq", rec.seq).Msg("quality controller: skipping report")
				continue
			}
			select {
			case msgs <- rec:
			case <-cctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return 0, nil
		case u, ok := <-updates:
			if !ok {
				return 0, errors.New("quality controller: policy watch ended")
			}
			if replay := s.adopt(u); replay > 0 {
				return replay, nil
			}
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					return 0, nil
				}
				return from, nil // the iterator stopped: resume
			}
			from = m.seq + 1
			d := s.ctl.Observe(m.seq, m.at, m.r)
			s.showTarget(m.r)
			if d == nil {
				s.showHold(m.r.Model)
				continue
			}
			if replay := s.write(ctx, d); replay > 0 {
				return replay, nil
			}
		}
	}
}

// showTarget exports the accuracy target in force for r's model: its
// policy's max_error, else the manifest's that r carries.
func (s *session) showTarget(r *gearbox.QualityReport) {
	if s.Metrics == nil {
		return
	}
	target := r.MaxError
	if p, _, ok := s.ctl.Policy(r.Model); ok && p.MaxError > 0 {
		target = p.MaxError
	}
	s.Metrics.target.WithLabelValues(r.Model).Set(target)
}

// adopt feeds a policy read from the KV to the controller; it returns a
// sequence to replay from, or 0.
func (s *session) adopt(u policyUpdate) uint64 {
	delete(s.held, u.Model)
	if u.deleted {
		s.ctl.Forget(u.Model)
		s.Log.Info().Str("model", u.Model).Msg("quality controller: policy deleted; back to the manifest's")
		return 0
	}
	if s.Metrics != nil {
		s.Metrics.current(&u.PrecisionPolicy)
	}
	return s.ctl.Adopt(u.Rev, u.PrecisionPolicy)
}

// showHold logs, and shows in the metrics, why the controller holds
// model's precision when that has changed since it last did. Waiting for
// evidence after a change is routine: it is logged at debug level.
func (s *session) showHold(model string) {
	h, why := s.ctl.Holding(model)
	if h == s.held[model] {
		return
	}
	s.held[model] = h
	if s.Metrics != nil {
		s.Metrics.holding(model, h)
	}
	ev := s.Log.Info()
	if h == HoldEvidence {
		ev = s.Log.Debug()
	}
	p, _, _ := s.ctl.Policy(model)
	ev.Str("model", model).Str("precision", string(p.Precision)).Str("hold", string(h)).Str("reason", why).
		Uint64("seq", s.ctl.Position(model)).Msg("precision policy held")
}

// write stores d by compare-and-swap. It returns a sequence to replay from
// when the KV held something else, or 0.
func (s *session) write(ctx context.Context, d *Decision) uint64 {
	d.Policy.By = s.Name
	model := d.Policy.Model
	delete(s.held, model)
	if s.Metrics != nil {
		s.Metrics.holding(model, "")
	}
	backoff := 50 * time.Millisecond
	for {
		rev, data, err := putPolicy(ctx, s.KV, &d.Policy, d.Rev)
		if err == nil {
			s.ctl.Written(d, rev)
			s.announce(d, rev, data)
			return 0
		}
		if errors.Is(err, errConflict) {
			// Another controller wrote first (the same decision, normally),
			// or the policy was set by hand.
			e, ok, rerr := readPolicy(ctx, s.KV, model)
			if rerr == nil && !ok {
				return s.adopt(policyUpdate{PolicyEntry: PolicyEntry{PrecisionPolicy: d.Policy}, deleted: true})
			}
			if rerr == nil {
				return s.adopt(policyUpdate{PolicyEntry: e})
			}
			err = rerr
		}
		if ctx.Err() != nil {
			return 0
		}
		s.Log.Warn().Err(err).Str("model", model).Msg("quality controller: write policy; retrying")
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// announce logs a change this controller wrote, counts it, and publishes it
// on gearbox.policy.<model>.
func (s *session) announce(d *Decision, rev uint64, data []byte) {
	p := d.Policy
	dir := d.Direction()
	ev := zerolog.Dict()
	if e := p.Evidence; e != nil {
		ev = ev.Str("precision", string(e.Precision)).Int("samples", e.Samples).Int("workers", e.Workers).
			Float64("upper_bound", e.UpperBound).Float64("mean", e.Mean).Int("non_finite", e.NonFinite).
			Uint64("first_seq", e.FirstSeq).Uint64("last_seq", e.LastSeq)
	}
	s.Log.Info().Str("model", p.Model).Str("precision", string(p.Precision)).Str("direction", dir).
		Str("reason", p.Reason).Strs("excluded", formats(p.Excluded)).Dict("evidence", ev).Uint64("seq", p.Seq).
		Uint64("revision", rev).Msg("precision policy changed")
	if s.Metrics != nil {
		s.Metrics.changes.WithLabelValues(p.Model, dir).Inc()
		s.Metrics.current(&p)
	}
	if err := announcePolicy(s.JS.Conn(), s.Subjects, p.Model, rev, data); err != nil {
		s.Log.Warn().Err(err).Str("model", p.Model).Msg("announce policy change")
	}
}

func formats(fs []precision.Format) []string {
	ss := make([]string, len(fs))
	for i, f := range fs {
		ss[i] = string(f)
	}
	return ss
}
