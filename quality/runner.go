package quality

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
)

// Runner runs a Controller against NATS: it replays GEARBOX_QUALITY in
// stream order through it, follows the policy bucket, writes decisions by
// compare-and-swap, and announces each change on gearbox.policy.<model>.
// Every worker may run one; they reach the same decisions and exactly one
// write lands per change.
type Runner struct {
	JS       jetstream.JetStream
	Subjects gearbox.Subjects
	KV       jetstream.KeyValue
	Rules    Rules
	// Name identifies the writer in Policy.By (the worker's name).
	Name    string
	Log     zerolog.Logger
	Metrics *Metrics
}

type received struct {
	seq uint64
	at  time.Time
	r   *gearbox.QualityReport
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
	w, err := r.KV.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("quality controller: watch %s: %w", r.Subjects.PolicyBucket(), err)
	}
	defer w.Stop()
	// The initial values end with a nil entry.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		r.adopt(ctl, e)
	}
	stream, err := r.JS.Stream(ctx, r.Subjects.QualityStream())
	if err != nil {
		return fmt.Errorf("quality controller: stream %s: %w", r.Subjects.QualityStream(), err)
	}
	first := stream.CachedInfo().State.FirstSeq
	if first > 1 {
		// Reports before first are gone: statistics of models whose policy
		// is older than that may be short.
		for model := range ctl.models {
			if p, _, ok := ctl.Policy(model); !ok || p.Seq+1 < first {
				ctl.SetCold(model)
			}
		}
		ctl.coldStart = true
	}

	from := uint64(1)
	for {
		replay, err := r.follow(ctx, ctl, w, from)
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
func (r *Runner) follow(ctx context.Context, ctl *Controller, w jetstream.KeyWatcher, from uint64) (uint64, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := r.JS.OrderedConsumer(cctx, r.Subjects.QualityStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.Subjects.Quality("*")},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return 0, fmt.Errorf("quality controller: consumer on %s: %w", r.Subjects.QualityStream(), err)
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
			rec, ok := r.decode(m)
			if !ok {
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
		case e, ok := <-w.Updates():
			if !ok {
				return 0, errors.New("quality controller: policy watch ended")
			}
			if e == nil {
				continue
			}
			if replay := r.adopt(ctl, e); replay > 0 {
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
			if d := ctl.Observe(m.seq, m.at, m.r); d != nil {
				if replay := r.write(ctx, ctl, d); replay > 0 {
					return replay, nil
				}
			}
		}
	}
}

// decode reads one report message; bad ones are logged and skipped (every
// controller skips the same ones).
func (r *Runner) decode(m jetstream.Msg) (received, bool) {
	meta, err := m.Metadata()
	if err != nil {
		return received{}, false
	}
	rep, err := gearbox.DecodeQualityReport(m.Data(), gearbox.EncodingOf(m.Headers()))
	if err != nil {
		r.Log.Warn().Err(err).Uint64("seq", meta.Sequence.Stream).Msg("quality controller: skipping report")
		return received{}, false
	}
	if want := r.Subjects.ModelOf(m.Subject()); rep.Model != want {
		r.Log.Warn().Str("subject", m.Subject()).Str("model", rep.Model).Uint64("seq", meta.Sequence.Stream).
			Msg("quality controller: skipping report for another model than its subject's")
		return received{}, false
	}
	return received{seq: meta.Sequence.Stream, at: meta.Timestamp, r: rep}, true
}

// adopt feeds a KV entry to the controller; it returns a sequence to replay
// from, or 0.
func (r *Runner) adopt(ctl *Controller, e jetstream.KeyValueEntry) uint64 {
	if e.Operation() != jetstream.KeyValuePut {
		ctl.Forget(e.Key())
		r.Log.Info().Str("model", e.Key()).Msg("quality controller: policy deleted; back to the manifest's")
		return 0
	}
	p, err := gearbox.DecodePolicy(e.Value())
	if err != nil {
		r.Log.Warn().Err(err).Str("model", e.Key()).Uint64("revision", e.Revision()).Msg("quality controller: ignoring policy")
		return 0
	}
	p.Model = e.Key()
	if r.Metrics != nil {
		r.Metrics.current(p.Model, p.Precision)
	}
	return ctl.Adopt(e.Revision(), *p)
}

// write stores d by compare-and-swap. It returns a sequence to replay from
// when the KV held something else, or 0.
func (r *Runner) write(ctx context.Context, ctl *Controller, d *Decision) uint64 {
	d.Policy.By = r.Name
	data, err := json.Marshal(d.Policy)
	if err != nil {
		r.Log.Error().Err(err).Msg("quality controller: encode policy")
		return 0
	}
	model := d.Policy.Model
	backoff := 50 * time.Millisecond
	for {
		var rev uint64
		if d.Rev == 0 {
			rev, err = r.KV.Create(ctx, model, data)
		} else {
			rev, err = r.KV.Update(ctx, model, data, d.Rev)
		}
		switch {
		case err == nil:
			ctl.Written(d, rev)
			r.announce(d, rev, data)
			return 0
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// Another controller wrote first (the same decision, normally),
			// or the policy was set by hand.
			e, gerr := r.KV.Get(ctx, model)
			if gerr != nil {
				err = gerr
				break
			}
			return r.adopt(ctl, e)
		}
		if ctx.Err() != nil {
			return 0
		}
		r.Log.Warn().Err(err).Str("model", model).Msg("quality controller: write policy; retrying")
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
func (r *Runner) announce(d *Decision, rev uint64, data []byte) {
	p := d.Policy
	dir := "down"
	if d.Up {
		dir = "up"
	}
	ev := zerolog.Dict()
	if e := p.Evidence; e != nil {
		ev = ev.Str("precision", string(e.Precision)).Int("samples", e.Samples).Int("workers", e.Workers).
			Float64("upper_bound", e.UpperBound).Float64("mean", e.Mean).Uint64("first_seq", e.FirstSeq).Uint64("last_seq", e.LastSeq)
	}
	r.Log.Info().Str("model", p.Model).Str("precision", string(p.Precision)).Str("direction", dir).
		Str("reason", p.Reason).Dict("evidence", ev).Uint64("seq", p.Seq).Uint64("revision", rev).
		Msg("precision policy changed")
	if r.Metrics != nil {
		r.Metrics.changes.WithLabelValues(p.Model, dir).Inc()
		r.Metrics.current(p.Model, p.Precision)
	}
	if err := announcePolicy(r.JS.Conn(), r.Subjects, p.Model, rev, data); err != nil {
		r.Log.Warn().Err(err).Str("model", p.Model).Msg("announce policy change")
	}
}

// announcePolicy publishes a policy change (its KV value) on
// gearbox.policy.<model>, with its revision in a header.
func announcePolicy(nc *nats.Conn, s gearbox.Subjects, model string, rev uint64, data []byte) error {
	m := nats.NewMsg(s.Policy(model))
	m.Header.Set(gearbox.HeaderContentType, gearbox.ContentJSON)
	m.Header.Set(HeaderPolicyRevision, strconv.FormatUint(rev, 10))
	m.Data = data
	return nc.PublishMsg(m)
}

// HeaderPolicyRevision carries the KV revision of a policy announced on
// gearbox.policy.<model>.
const HeaderPolicyRevision = "Gearbox-Policy-Revision"
