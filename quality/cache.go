package quality

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// PolicyCache is a worker's copy of the policy bucket, kept current by a
// watch: the precision each model's auto jobs run at, as every worker sees
// it within a watch round-trip of a change. It is safe for concurrent use.
type PolicyCache struct {
	mu sync.RWMutex
	m  map[string]PolicyEntry
}

// WatchPolicies reads every policy in kv and follows changes until ctx ends.
// It returns once the current policies are loaded.
func WatchPolicies(ctx context.Context, kv jetstream.KeyValue, log zerolog.Logger) (*PolicyCache, error) {
	current, next, err := watchPolicies(ctx, kv, log)
	if err != nil {
		return nil, err
	}
	p := &PolicyCache{m: map[string]PolicyEntry{}}
	for _, u := range current {
		p.apply(u, log)
	}
	go func() {
		for u := range next {
			p.apply(u, log)
		}
	}()
	return p, nil
}

func (p *PolicyCache) apply(u policyUpdate, log zerolog.Logger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u.deleted {
		delete(p.m, u.Model)
		return
	}
	if old, ok := p.m[u.Model]; ok && old.Rev >= u.Rev {
		return
	}
	p.m[u.Model] = u.PolicyEntry
	log.Debug().Str("model", u.Model).Str("precision", string(u.Precision)).Uint64("revision", u.Rev).Msg("policy")
}

// Get returns model's policy, or false when it has none (the manifest's
// initial precision applies). A nil *PolicyCache has none.
func (p *PolicyCache) Get(model string) (PolicyEntry, bool) {
	if p == nil {
		return PolicyEntry{}, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	e, ok := p.m[model]
	return e, ok
}
