package kernels

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Opener opens a backend for a device spec such as "cpu" or "cuda:0".
type Opener func(spec string) (Backend, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// ErrNoBackend is returned (wrapped) by Open when no registered backend
// serves the requested device kind.
var ErrNoBackend = errors.New("no such backend")

// Register makes a backend kind ("cpu", "cuda") available to Open. It panics
// if called twice for the same kind, like database/sql.Register.
func Register(kind string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if open == nil {
		panic("kernels: Register opener is nil")
	}
	if _, dup := openers[kind]; dup {
		panic("kernels: Register called twice for " + kind)
	}
	openers[kind] = open
}

// Kinds lists the registered backend kinds, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	ks := make([]string, 0, len(openers))
	for k := range openers {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Open opens the backend for spec: "cpu", "cuda:N" (fails if that device
// cannot be used) or "auto" (CUDA device 0 when a registered CUDA backend can
// open it, else the CPU). For auto, fallback holds why CUDA was not used, or
// is nil.
func Open(spec string) (b Backend, fallback error, err error) {
	spec = strings.ToLower(strings.TrimSpace(spec))
	if spec == "" || spec == "auto" {
		mu.RLock()
		cuda, ok := openers["cuda"]
		mu.RUnlock()
		if ok {
			b, cerr := cuda("cuda:0")
			if cerr == nil {
				return b, nil, nil
			}
			fallback = cerr
		} else {
			fallback = fmt.Errorf("%w: cuda backend not built into this binary", ErrNoBackend)
		}
		b, err = openExact("cpu")
		return b, fallback, err
	}
	b, err = openExact(spec)
	return b, nil, err
}

// openExact opens exactly the device spec names, with no fallback.
func openExact(spec string) (Backend, error) {
	kind, _, _ := strings.Cut(spec, ":")
	mu.RLock()
	open, ok := openers[kind]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %s)", ErrNoBackend, kind, strings.Join(Kinds(), ", "))
	}
	return open(spec)
}
