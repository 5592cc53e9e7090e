package kerneltest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
)

// RunRegistry checks kernels.Open for the backend kind ("cpu", "cuda"),
// registered by importing its package, and the CPU fallback of "auto":
//
//   - kind is among kernels.Kinds();
//   - kernels.Open(kind) opens a backend named kind or kind:N, or fails
//     with the reason the device cannot be used here (the test logs it);
//   - kernels.Open("auto") (and "", and " AUTO ") opens CUDA device 0
//     exactly when kernels.Open("cuda:0") does, with no fallback, and
//     otherwise the CPU backend, with a fallback that carries
//     kernels.Open("cuda:0")'s error (one wrapping kernels.ErrNoBackend
//     when no CUDA backend is registered);
//   - a kind nobody registered fails with kernels.ErrNoBackend, naming
//     the registered kinds.
//
// Backends opened are closed.
func RunRegistry(t *testing.T, kind string) {
	kinds := kernels.Kinds()
	if !slices.Contains(kinds, kind) {
		t.Fatalf("kernels.Kinds() = %v, want it to include %s", kinds, kind)
	}
	if b, _, err := kernels.Open(kind); err != nil {
		t.Logf("kernels.Open(%q) fails here: %v", kind, err)
	} else {
		if name := b.Name(); name != kind && !strings.HasPrefix(name, kind+":") {
			t.Errorf("kernels.Open(%q) opened a backend named %q", kind, name)
		}
		b.Close()
	}

	cuda, _, cudaErr := kernels.Open("cuda:0")
	if cudaErr == nil {
		cuda.Close()
	}
	for _, spec := range []string{"auto", "", " AUTO "} {
		b, fallback, err := kernels.Open(spec)
		if err != nil {
			t.Fatalf("kernels.Open(%q): %v", spec, err)
		}
		name := b.Name()
		b.Close()
		switch {
		case cudaErr == nil && (name != "cuda:0" || fallback != nil):
			t.Errorf("kernels.Open(%q) = %s, fallback %v; cuda:0 opens here, want it and no fallback", spec, name, fallback)
		case cudaErr != nil && (name != "cpu" || fallback == nil):
			t.Errorf("kernels.Open(%q) = %s, fallback %v; cuda:0 does not open here (%v), want cpu and why", spec, name, fallback, cudaErr)
		case cudaErr != nil && (fallback.Error() != cudaErr.Error() || errors.Is(fallback, kernels.ErrNoBackend) != errors.Is(cudaErr, kernels.ErrNoBackend)):
			t.Errorf("kernels.Open(%q) fallback %q; want cuda:0's error %q", spec, fallback, cudaErr)
		}
	}
	if cudaErr != nil {
		t.Logf("auto falls back to the CPU here: %v", cudaErr)
	}

	_, _, err := kernels.Open("tpu:0")
	if !errors.Is(err, kernels.ErrNoBackend) || !strings.Contains(err.Error(), strings.Join(kinds, ", ")) {
		t.Errorf("kernels.Open(tpu:0) = %v; want ErrNoBackend naming %v", err, kinds)
	}
}
