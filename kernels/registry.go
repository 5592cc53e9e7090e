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

// registry maps device kinds to their openers.
type registry struct {
	mu      sync.RWMutex
	openers map[string]Opener
}

// backends is the registry of Register, Kinds and Open.
var backends = newRegistry()

func newRegistry() *registry { return &registry{openers: map[string]Opener{}} }

// Register makes a backend kind ("cpu", "cuda") available to Open. It panics
// if open is nil or if called twice for the same kind, like
// database/sql.Register.
func Register(kind string, open Opener) { backends.register(kind, open) }

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
