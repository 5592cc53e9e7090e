package kernels

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Opener opens a backend for a device spec such as "cpu" or "cuda:0". It
// returns a working Backend or an error saying why the device cannot be
// used.
type Opener func(spec string) (Backend, error)

// ErrNoBackend is returned (wrapped) by Open when no registered backend
// serves the requested device kind.
var ErrNoBackend = errors.New("no such backend")

// Counter reports how many devices of its kind the process can open: kind:0
// to kind:N-1. It returns an error when the kind's devices cannot be used at
// all (no driver, a build without the backend's library).
type Counter func() (int, error)

// registry maps device kinds to their openers and counters.
type registry struct {
	mu       sync.RWMutex
	openers  map[string]Opener
	counters map[string]Counter
}

// backends is the registry of Register, Kinds and Open.
var backends = newRegistry()

func newRegistry() *registry {
	return &registry{openers: map[string]Opener{}, counters: map[string]Counter{}}
}

// Register makes a backend kind ("cpu", "cuda") available to Open. It panics
// if open is nil or if called twice for the same kind, like
// database/sql.Register.
func Register(kind string, open Opener) { backends.register(kind, open) }

// RegisterCounter gives a backend kind with several devices ("cuda") the
// Counter that Count and OpenWorkers use. Like Register, it panics if count
// is nil or if called twice for the same kind.
func RegisterCounter(kind string, count Counter) { backends.registerCounter(kind, count) }

// Count returns how many devices of kind the process can open. A kind
// registered without a Counter ("cpu") has one device; a kind nobody
// registered fails with an error wrapping ErrNoBackend.
func Count(kind string) (int, error) { return backends.count(kind) }

// Kinds lists the registered backend kinds, sorted.
func Kinds() []string { return backends.kinds() }

// Open opens the backend for spec, case and surrounding spaces ignored:
//
//   - "cpu", "cuda", "cuda:N": exactly that device, or an error (wrapping
//     ErrNoBackend when no backend of that kind is registered);
//   - "auto" or "": CUDA device 0 when a CUDA backend is registered and the
//     device opens, otherwise the CPU. fallback then holds why CUDA was not
//     used (the CUDA opener's error, or one wrapping ErrNoBackend when no
//     CUDA backend is built in), and is nil when CUDA opened.
//
// fallback is always nil for an exact spec.
func Open(spec string) (b Backend, fallback error, err error) { return backends.open(spec) }

func (r *registry) register(kind string, open Opener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if open == nil {
		panic("kernels: Register opener is nil")
	}
	if _, dup := r.openers[kind]; dup {
		panic("kernels: Register called twice for " + kind)
	}
	r.openers[kind] = open
}

func (r *registry) registerCounter(kind string, count Counter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if count == nil {
		panic("kernels: RegisterCounter counter is nil")
	}
	if _, dup := r.counters[kind]; dup {
		panic("kernels: RegisterCounter called twice for " + kind)
	}
	r.counters[kind] = count
}

func (r *registry) count(kind string) (int, error) {
	r.mu.RLock()
	_, ok := r.openers[kind]
	count := r.counters[kind]
	r.mu.RUnlock()
	switch {
	case !ok:
		return 0, fmt.Errorf("%w %q (registered: %s)", ErrNoBackend, kind, strings.Join(r.kinds(), ", "))
	case count == nil:
		return 1, nil
	}
	return count()
}

func (r *registry) kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ks := make([]string, 0, len(r.openers))
	for k := range r.openers {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (r *registry) open(spec string) (b Backend, fallback error, err error) {
	spec = strings.ToLower(strings.TrimSpace(spec))
	if spec != "" && spec != "auto" {
		b, err = r.openExact(spec)
		return b, nil, err
	}
	if b, fallback = r.openExact("cuda:0"); fallback == nil {
		return b, nil, nil
	}
	b, err = r.openExact("cpu")
	return b, fallback, err
}

// openExact opens exactly the device spec names, with no fallback.
func (r *registry) openExact(spec string) (Backend, error) {
	kind, _, _ := strings.Cut(spec, ":")
	r.mu.RLock()
	open, ok := r.openers[kind]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %s)", ErrNoBackend, kind, strings.Join(r.kinds(), ", "))
	}
	b, err := open(spec)
	if err == nil && b == nil {
		err = fmt.Errorf("kernels: the %s opener returned neither a backend nor an error", kind)
	}
	return b, err
}
