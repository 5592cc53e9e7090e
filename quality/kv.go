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

// This file holds every read and write of the policy bucket
// (gearbox_policy) the quality loop makes, and the announcement that
// follows each write.

// PolicyEntry is a model's policy as stored, with its KV revision.
type PolicyEntry struct {
	gearbox.PrecisionPolicy
	Rev uint64
}

// policyUpdate is one entry of the policy bucket, decoded: a stored policy,
// or (deleted) the removal of the model's key.
type policyUpdate struct {
	PolicyEntry
	deleted bool
}

// decodeEntry decodes an entry of the policy bucket.
func decodeEntry(e jetstream.KeyValueEntry) (policyUpdate, error) {
	if e.Operation() != jetstream.KeyValuePut {
		return policyUpdate{PolicyEntry: PolicyEntry{PrecisionPolicy: gearbox.PrecisionPolicy{Model: e.Key()}, Rev: e.Revision()}, deleted: true}, nil
	}
	p, err := gearbox.DecodePolicy(e.Value())
	if err != nil {
		return policyUpdate{}, err
	}
	p.Model = e.Key()
	return policyUpdate{PolicyEntry: PolicyEntry{PrecisionPolicy: *p, Rev: e.Revision()}}, nil
}

// watchPolicies follows every key of kv. It returns the stored policies
// and a channel of the changes after them, closed when ctx ends or the
// watch does. Entries that do not decode are logged and skipped (every
// reader skips the same ones).
func watchPolicies(ctx context.Context, kv jetstream.KeyValue, log zerolog.Logger) ([]policyUpdate, <-chan policyUpdate, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("watch policies in %s: %w", kv.Bucket(), err)
	}
	decode := func(e jetstream.KeyValueEntry) (policyUpdate, bool) {
		u, err := decodeEntry(e)
		if err != nil {
			log.Warn().Err(err).Str("model", e.Key()).Uint64("revision", e.Revision()).Msg("ignoring policy")
			return u, false
		}
		return u, true
	}
	var current []policyUpdate
	for e := range w.Updates() {
		if e == nil {
			break // the current values end with a nil entry
		}
		if u, ok := decode(e); ok {
			current = append(current, u)
		}
	}
	next := make(chan policyUpdate)
	go func() {
		defer close(next)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				u, ok := decode(e)
				if !ok {
					continue
				}
				select {
				case next <- u:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return current, next, nil
}

// readPolicy returns model's stored policy, or false when it has none.
func readPolicy(ctx context.Context, kv jetstream.KeyValue, model string) (PolicyEntry, bool, error) {
	e, err := kv.Get(ctx, model)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return PolicyEntry{}, false, nil
	case err != nil:
		return PolicyEntry{}, false, fmt.Errorf("read policy of %s: %w", model, err)
	}
	u, err := decodeEntry(e)
	if err != nil {
		return PolicyEntry{}, false, fmt.Errorf("policy of %s at revision %d: %w", model, e.Revision(), err)
	}
	return u.PolicyEntry, !u.deleted, nil
}

// errConflict is returned by putPolicy when the key is not at the revision
// the write was based on.
var errConflict = errors.New("the stored policy changed")

// putPolicy stores p as its model's policy by compare-and-swap on rev (0:
// the key must not exist yet). It returns the new revision and the value
// written; errConflict when another write came first.
func putPolicy(ctx context.Context, kv jetstream.KeyValue, p *gearbox.PrecisionPolicy, rev uint64) (uint64, []byte, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return 0, nil, err
	}
	if rev == 0 {
		rev, err = kv.Create(ctx, p.Model, data)
	} else {
		rev, err = kv.Update(ctx, p.Model, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, nil, fmt.Errorf("write policy of %s: %w (%w)", p.Model, errConflict, err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("write policy of %s: %w", p.Model, err)
	}
	return rev, data, nil
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

// SetPolicy changes model's policy by hand: it reads the stored policy (or
// starts from base when the model has none), lets edit change it, checks
// it (PrecisionPolicy.Validate) and writes it by compare-and-swap,
// retrying on a concurrent change. The new policy takes effect at the
// quality stream's current end (Seq): controllers judge only reports after
// it, so the evidence restarts, and the precisions ruled out are cleared.
// It returns the policy written and its revision.
func SetPolicy(ctx context.Context, js jetstream.JetStream, s gearbox.Subjects, kv jetstream.KeyValue, model string, base gearbox.PrecisionPolicy, edit func(*gearbox.PrecisionPolicy) error) (gearbox.PrecisionPolicy, uint64, error) {
	for {
		stored, ok, err := readPolicy(ctx, kv, model)
		if err != nil {
			return gearbox.PrecisionPolicy{}, 0, err
		}
		p := base
		if ok {
			p = stored.PrecisionPolicy
		}
		p.Model = model
		if err := edit(&p); err != nil {
			return p, 0, err
		}
		if err := p.Validate(); err != nil {
			return p, 0, fmt.Errorf("policy of %s: %w", model, err)
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
		rev, data, err := putPolicy(ctx, kv, &p, stored.Rev)
		if errors.Is(err, errConflict) {
			continue // changed meanwhile: edit the newer one
		}
		if err != nil {
			return p, 0, err
		}
		// Announce it like the controllers' changes. The write has landed:
		// a failed announcement is not the caller's failure.
		if nc := js.Conn(); nc != nil && announcePolicy(nc, s, model, rev, data) == nil {
			_ = nc.Flush()
		}
		return p, rev, nil
	}
}
