package quality

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
)

// PolicyEntry is a model's policy as stored, with its KV revision.
type PolicyEntry struct {
	gearbox.Policy
	Rev uint64
}

// Policies follows the policy bucket: the precision each model's auto jobs
// run at, as every worker sees it within a watch round-trip of a change.
// It is safe for concurrent use.
type Policies struct {
	mu sync.RWMutex
	m  map[string]PolicyEntry
}

// WatchPolicies reads every policy in kv and follows changes until ctx ends.
// It returns once the current policies are loaded.
func WatchPolicies(ctx context.Context, kv jetstream.KeyValue, log zerolog.Logger) (*Policies, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch policies in %s: %w", kv.Bucket(), err)
	}
	p := &Policies{m: map[string]PolicyEntry{}}
	for e := range w.Updates() {
		if e == nil {
			break
		}
		p.apply(e, log)
	}
	go func() {
		defer w.Stop()
		for e := range w.Updates() {
			if e != nil {
				p.apply(e, log)
			}
		}
	}()
	return p, nil
}

func (p *Policies) apply(e jetstream.KeyValueEntry, log zerolog.Logger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(p.m, e.Key())
		return
	}
	pol, err := gearbox.DecodePolicy(e.Value())
	if err != nil {
		log.Warn().Err(err).Str("model", e.Key()).Uint64("revision", e.Revision()).Msg("ignoring policy")
		return
	}
	pol.Model = e.Key()
	if old, ok := p.m[e.Key()]; ok && old.Rev >= e.Revision() {
		return
	}
	p.m[e.Key()] = PolicyEntry{Policy: *pol, Rev: e.Revision()}
	log.Debug().Str("model", pol.Model).Str("precision", string(pol.Precision)).Uint64("revision", e.Revision()).Msg("policy")
}

// Get returns model's policy, or false when it has none (the manifest's
// initial precision applies). A nil *Policies has none.
func (p *Policies) Get(model string) (PolicyEntry, bool) {
	if p == nil {
		return PolicyEntry{}, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	e, ok := p.m[model]
	return e, ok
}

// SetPolicy changes model's policy by hand: it reads the stored policy (or
// starts from base when the model has none), lets edit change it, and
// writes it by compare-and-swap, retrying on a concurrent change. The new
// policy takes effect at the quality stream's current end (Policy.Seq):
// controllers judge only reports after it, so the evidence restarts, and
// the precisions ruled out are cleared. It returns the policy written and
// its revision.
func SetPolicy(ctx context.Context, js jetstream.JetStream, s gearbox.Subjects, kv jetstream.KeyValue, model string, base gearbox.Policy, edit func(*gearbox.Policy) error) (gearbox.Policy, uint64, error) {
	for {
		var p gearbox.Policy
		var rev uint64
		e, err := kv.Get(ctx, model)
		switch {
		case err == nil:
			old, err := gearbox.DecodePolicy(e.Value())
			if err != nil {
				return p, 0, err
			}
			p, rev = *old, e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
			p = base
		default:
			return p, 0, fmt.Errorf("read policy of %s: %w", model, err)
		}
		p.Model = model
		if err := edit(&p); err != nil {
			return p, 0, err
		}
		if !p.Precision.Valid() || !p.Floor.Valid() || !p.Ceiling.Valid() {
			return p, 0, fmt.Errorf("policy of %s: precision %q, floor %q and ceiling %q must all be formats", model, p.Precision, p.Floor, p.Ceiling)
		}
		if p.Floor.MoreAccurate(p.Ceiling) {
			return p, 0, fmt.Errorf("policy of %s: floor %s is more accurate than ceiling %s", model, p.Floor, p.Ceiling)
		}
		if p.Precision.MoreAccurate(p.Ceiling) || p.Floor.MoreAccurate(p.Precision) {
			return p, 0, fmt.Errorf("policy of %s: precision %s is outside [floor %s, ceiling %s]", model, p.Precision, p.Floor, p.Ceiling)
		}
		if p.MaxError < 0 || p.MaxError > 1 {
			return p, 0, fmt.Errorf("policy of %s: max_error %g must be in (0, 1] (0: the manifest's)", model, p.MaxError)
		}
		st, err := js.Stream(ctx, s.QualityStream())
		if err != nil {
			return p, 0, fmt.Errorf("stream %s: %w", s.QualityStream(), err)
		}
		p.Seq = st.CachedInfo().State.LastSeq
		p.By, p.UpdatedAt = ManualBy, time.Now().UTC()
		p.Evidence, p.Excluded = nil, nil
		if p.Reason == "" {
			p.Reason = "set by hand"
		}
		data, err := json.Marshal(p)
		if err != nil {
			return p, 0, err
		}
		if rev == 0 {
			rev, err = kv.Create(ctx, model, data)
		} else {
			rev, err = kv.Update(ctx, model, data, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // changed meanwhile: edit the newer one
		}
		if err != nil {
			return p, 0, fmt.Errorf("write policy of %s: %w", model, err)
		}
		// Announce it like the controllers' changes. The write has landed:
		// a failed announcement is not the caller's failure.
		if nc := js.Conn(); nc != nil && announcePolicy(nc, s, model, rev, data) == nil {
			_ = nc.Flush()
		}
		return p, rev, nil
	}
}
