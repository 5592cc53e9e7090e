package worker

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/model"
)

// ErrUnknownModel is returned (wrapped) by Models.Get for a model that is
// neither loaded nor in the object store.
var ErrUnknownModel = errors.New("unknown model")

// Models is the set of models a worker serves: loaded from disk up front,
// and fetched on first use from the NATS object store when Fetch is set. It
// is safe for concurrent use and may be shared by several workers.
type Models struct {
	// Fetch, when set, loads a model missing from the set (from the object
	// store). It returns an error wrapping model.ErrNotFound when the model
	// does not exist.
	Fetch func(ctx context.Context, name string) (*model.Model, error)
	// NegativeTTL is how long a model that could not be fetched is
	// reported unknown before Fetch is tried again (default 2 s).
	NegativeTTL time.Duration

	mu     sync.RWMutex
	models map[string]*model.Model
	missed map[string]time.Time
	nowFn  func() time.Time
}

// NewModels returns a set holding ms.
func NewModels(ms ...*model.Model) *Models {
	s := &Models{models: map[string]*model.Model{}, missed: map[string]time.Time{}, nowFn: time.Now}
	for _, m := range ms {
		s.Put(m)
	}
	return s
}

// Put adds or replaces a model.
func (s *Models) Put(m *model.Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.models[m.Name] = m
	delete(s.missed, m.Name)
}

// Names lists the models in the set, sorted.
func (s *Models) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.models))
	for n := range s.models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Get returns the model called name, fetching it if needed.
func (s *Models) Get(ctx context.Context, name string) (*model.Model, error) {
	s.mu.RLock()
	m, ok := s.models[name]
	missedAt, missed := s.missed[name]
	s.mu.RUnlock()
	if ok {
		return m, nil
	}
	ttl := s.NegativeTTL
	if ttl == 0 {
		ttl = 2 * time.Second
	}
	if s.Fetch == nil || (missed && s.nowFn().Sub(missedAt) < ttl) {
		return nil, ErrUnknownModel
	}
	m, err := s.Fetch(ctx, name)
	if err != nil {
		if errors.Is(err, model.ErrNotFound) {
			s.mu.Lock()
			s.missed[name] = s.nowFn()
			s.mu.Unlock()
			return nil, ErrUnknownModel
		}
		return nil, err
	}
	s.Put(m)
	return m, nil
}

// Follow watches the object store bucket until ctx ends: when a model in the
// set is pushed again (a new digest), it fetches and swaps in the new
// version; a model pushed after a job asked for it in vain is fetched on the
// next job instead of after NegativeTTL. The bucket may not exist yet.
func (s *Models) Follow(ctx context.Context, js jetstream.JetStream, bucket string, log zerolog.Logger) error {
	var obs jetstream.ObjectStore
	for {
		var err error
		if obs, err = js.ObjectStore(ctx, bucket); err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			log.Debug().Err(err).Str("bucket", bucket).Msg("model store")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	// Current values first (a push may have landed before the watch
	// began), then updates; unchanged digests cost one fetch each.
	w, err := obs.Watch(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		var info *jetstream.ObjectInfo
		select {
		case <-ctx.Done():
			return ctx.Err()
		case info = <-w.Updates():
		}
		if info == nil || info.Deleted {
			continue
		}
		name, file, ok := strings.Cut(info.Name, "/")
		if !ok || file != model.ManifestFile { // the manifest is put last
			continue
		}
		s.mu.Lock()
		cur, loaded := s.models[name]
		delete(s.missed, name)
		s.mu.Unlock()
		if !loaded || s.Fetch == nil {
			continue
		}
		m, err := s.Fetch(ctx, name)
		if err != nil {
			log.Warn().Err(err).Str("model", name).Msg("fetch pushed model")
			continue
		}
		if m.Digest != cur.Digest {
			s.Put(m)
			log.Info().Str("model", name).Str("digest", m.Digest[:12]).Str("was", cur.Digest[:12]).Msg("model updated from the object store")
		}
	}
}
