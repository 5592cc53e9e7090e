package worker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// ErrUnknownModel is returned (wrapped) by Models.Get for a model that is
// neither loaded nor in the object store.
var ErrUnknownModel = errors.New("unknown model")

// Models is the set of models a worker serves: loaded from disk up front,
// and fetched on first use from the NATS object store when Fetch is set. It
// is safe for concurrent use and may be shared by several workers.
//
// When a model is replaced (Put of a new version, as Follow does when it is
// pushed again), the old version is evicted from the backends of the
// workers using the set (kernels.Backend.Evict) once its last job, and the
// last quality check of its batches, is done; see versions for how that is
// kept correct under concurrency.
type Models struct {
	// Fetch, when set, loads a model missing from the set (from the object
	// store). It returns an error wrapping model.ErrNotFound when the model
	// does not exist.
	Fetch func(ctx context.Context, name string) (*model.Model, error)
	// FetchLM, when set, loads a language model missing from the set (from
	// the object store), for a name no tensor model has; it returns an
	// error wrapping model.ErrNotFound when there is none.
	FetchLM func(ctx context.Context, name string) (*lm.Model, error)
	// NegativeTTL is how long a model that could not be fetched is
	// reported unknown before Fetch is tried again (default 2 s).
	NegativeTTL time.Duration

	mu       sync.RWMutex // guards models, missed and backends; its write lock excludes taking a version
	models   map[string]*model.Model
	missed   map[string]time.Time
	backends []kernels.Backend // where replaced versions are evicted
	users    *versions[*model.Model]
	lms      map[string]*lmServed // language models, by name
	lmMissed map[string]time.Time // names FetchLM did not find, and when
	lmFetch  map[string]*lmFetch  // fetches in flight, by name
	nowFn    func() time.Time
}

// NewModels returns a set holding ms.
func NewModels(ms ...*model.Model) *Models {
	s := &Models{models: map[string]*model.Model{}, missed: map[string]time.Time{}, users: newVersions[*model.Model](), nowFn: time.Now}
	for _, m := range ms {
		s.Put(m)
	}
	return s
}

// Put adds or replaces a model. The version it replaces is evicted from
// the workers' backends once no job or check uses it.
func (s *Models) Put(m *model.Model) { s.put(m, false) }

// put adds or replaces m and, with take, counts the caller as its user,
// in one step: no swap can come between.
func (s *Models) put(m *model.Model, take bool) {
	s.mu.Lock()
	old := s.models[m.Name]
	s.models[m.Name] = m
	delete(s.missed, m.Name)
	s.users.unretire(m)
	if take {
		s.users.add(m)
	}
	evict := old != nil && old != m && s.users.retire(old)
	s.mu.Unlock()
	if evict {
		s.evict(old)
	}
}

// PutLM adds a language model, with the tokenizer its checkpoint carries
// (none: its jobs must give prompt_tokens). A name serves one model: a
// tensor model of the same name is an error, as is replacing a language
// model (its versions are not followed yet).
func (s *Models) PutLM(m *lm.Model) error {
	var tok *tokenizer.Tokenizer
	if m.Tokenizer != nil {
		var err error
		if tok, err = tokenizer.ParseFiles(tokenizer.Files{Tokenizer: m.Tokenizer, Config: m.TokenizerConfig}); err != nil {
			return fmt.Errorf("model %s: %w", m.Name, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.models[m.Name]; ok {
		return fmt.Errorf("model %s: a tensor model has that name", m.Name)
	}
	if old, ok := s.lms[m.Name]; ok && old.m != m {
		return fmt.Errorf("model %s: loaded already", m.Name)
	}
	if s.lms == nil {
		s.lms = map[string]*lmServed{}
	}
	s.lms[m.Name] = &lmServed{m: m, tok: tok}
	return nil
}

// languageModel returns the language model called name.
func (s *Models) languageModel(name string) (*lmServed, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.lms[name]
	return l, ok
}

// lmFetch is a fetch of a language model in flight: the workers sharing
// the set wait for it rather than fetch the same checkpoint (gigabytes, in
// memory) again at once.
type lmFetch struct {
	done chan struct{}
	err  error // set before done is closed
}

// testHookLMWait, when set (tests), is called when a caller starts waiting
// for another's fetch.
var testHookLMWait func()

// fetchLanguageModel returns the language model called name, fetching it
// with FetchLM when no model of that name is loaded; false, nil when there
// is none (then the name may be a tensor model's). One fetch of a name is
// in flight at a time: other callers wait for it and get its outcome. A
// fetch is logged to log: a large checkpoint takes minutes.
func (s *Models) fetchLanguageModel(ctx context.Context, name string, log zerolog.Logger) (*lmServed, bool, error) {
	if l, ok, done := s.servedLM(name); done {
		return l, ok, nil
	}
	s.mu.Lock()
	if l, ok, done := s.servedLMLocked(name); done {
		s.mu.Unlock()
		return l, ok, nil
	}
	if f := s.lmFetch[name]; f != nil {
		s.mu.Unlock()
		if testHookLMWait != nil {
			testHookLMWait()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if f.err != nil {
			return nil, false, f.err
		}
		l, ok, _ := s.servedLM(name)
		return l, ok, nil
	}
	if s.lmFetch == nil {
		s.lmFetch = map[string]*lmFetch{}
	}
	f := &lmFetch{done: make(chan struct{})}
	s.lmFetch[name] = f
	s.mu.Unlock()
	l, ok, err := s.fetchLM(ctx, name, log)
	s.mu.Lock()
	delete(s.lmFetch, name)
	s.mu.Unlock()
	f.err = err
	close(f.done)
	return l, ok, err
}

// servedLM says whether fetchLanguageModel is done without a fetch: name
// is served (l, true), a tensor model's, missed within NegativeTTL, or
// there is no FetchLM.
func (s *Models) servedLM(name string) (l *lmServed, ok, done bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.servedLMLocked(name)
}

func (s *Models) servedLMLocked(name string) (l *lmServed, ok, done bool) {
	l, ok = s.lms[name]
	_, tensor := s.models[name]
	missedAt, missed := s.lmMissed[name]
	return l, ok, ok || tensor || s.FetchLM == nil || (missed && s.nowFn().Sub(missedAt) < s.negativeTTL())
}

// fetchLM fetches name with FetchLM and serves it.
func (s *Models) fetchLM(ctx context.Context, name string, log zerolog.Logger) (*lmServed, bool, error) {
	log.Info().Str("model", name).Msg("fetching language model")
	start := time.Now()
	m, err := s.FetchLM(ctx, name)
	if err == nil {
		log.Info().Str("model", name).Str("digest", m.Digest[:min(12, len(m.Digest))]).Int64("weight_bytes", m.WeightBytes()).
			Dur("took", time.Since(start)).Msg("language model fetched")
	} else if !errors.Is(err, model.ErrNotFound) {
		log.Warn().Err(err).Str("model", name).Dur("took", time.Since(start)).Msg("language model fetch failed")
	}
	if errors.Is(err, model.ErrNotFound) {
		s.mu.Lock()
		if s.lmMissed == nil {
			s.lmMissed = map[string]time.Time{}
		}
		s.lmMissed[name] = s.nowFn()
		s.mu.Unlock()
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	// A worker that loaded it from disk meanwhile serves its own.
	if err := s.PutLM(m); err != nil {
		if l, ok := s.languageModel(name); ok {
			return l, true, nil
		}
		return nil, false, err
	}
	l, ok := s.languageModel(name)
	return l, ok, nil
}

func (s *Models) negativeTTL() time.Duration {
	if s.NegativeTTL == 0 {
		return 2 * time.Second
	}
	return s.NegativeTTL
}

// Names lists the models in the set, sorted.
func (s *Models) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.models)+len(s.lms))
	for n := range s.models {
		names = append(names, n)
	}
	for n := range s.lms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Get returns the current version of the model called name, fetching it if
// needed. It does not hold the version: one replaced after Get returns may
// be evicted from the backends, and a forward pass of it then converts its
// weights again, for good. The worker takes versions with acquire.
func (s *Models) Get(ctx context.Context, name string) (*model.Model, error) {
	return s.get(ctx, name, false)
}

// acquire is Get that counts the caller as a user of the version it
// returns, until release.
func (s *Models) acquire(ctx context.Context, name string) (*model.Model, error) {
	return s.get(ctx, name, true)
}

func (s *Models) get(ctx context.Context, name string, take bool) (*model.Model, error) {
	s.mu.RLock()
	m, ok := s.models[name]
	if ok && take {
		s.users.add(m)
	}
	missedAt, missed := s.missed[name]
	s.mu.RUnlock()
	if ok {
		return m, nil
	}
	if s.Fetch == nil || (missed && s.nowFn().Sub(missedAt) < s.negativeTTL()) {
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
	s.put(m, take)
	return m, nil
}

// hold counts one more user of m, which the caller holds already (a batch
// lending its version to a quality check), and returns the function that
// releases it; that function may be called more than once.
func (s *Models) hold(m *model.Model) (release func()) {
	s.users.add(m)
	return sync.OnceFunc(func() { s.release(m) })
}

// release ends one use of m, from acquire or hold, and evicts m if it was
// replaced and this was its last user.
func (s *Models) release(m *model.Model) {
	if s.users.release(m) {
		s.evict(m)
	}
}

// evictFrom adds b to the backends replaced versions are evicted from.
func (s *Models) evictFrom(b kernels.Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.backends {
		if sameBackend(have, b) {
			return
		}
	}
	s.backends = append(s.backends, b)
}

// sameBackend reports whether a and b are the same backend, without the
// panic of == on backends of an incomparable type.
func sameBackend(a, b kernels.Backend) bool {
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// evict drops what the backends hold for m, a version nobody uses any more.
func (s *Models) evict(m *model.Model) {
	s.mu.RLock()
	bs := slices.Clone(s.backends)
	s.mu.RUnlock()
	for _, b := range bs {
		b.Evict(m)
	}
}

// Follow watches the object store bucket until ctx ends: when a model in the
// set is pushed again (a new digest), it fetches and swaps in the new
// version (Put: the old one is evicted once its jobs are done); a model pushed after a job asked for it in vain is fetched on the
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
