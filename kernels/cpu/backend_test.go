package cpu_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
)

// TestOpenReturnsBackend: kernels.Open("cpu") returns this package's
// Backend.
func TestOpenReturnsBackend(t *testing.T) {
	b, _, err := kernels.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*cpu.Backend); !ok {
		t.Errorf("kernels.Open(cpu) returned %T, want *cpu.Backend", b)
	}
}

func TestOpenRejectsDeviceIndex(t *testing.T) {
	for _, spec := range []string{"cpu:0", "cpu:1", "cpu:"} {
		b, _, err := kernels.Open(spec)
		if err == nil {
			t.Errorf("kernels.Open(%q) = %v, nil; want an error", spec, b)
		} else if !strings.Contains(err.Error(), `takes the spec "cpu" only`) {
			t.Errorf("kernels.Open(%q) error = %q; want it to say which spec works", spec, err)
		}
	}
}

func TestNewConfig(t *testing.T) {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Threads(), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("Threads() = %d, want GOMAXPROCS %d", got, want)
	}
	b, err = cpu.New(cpu.Config{Threads: 5})
	if err != nil || b.Threads() != 5 {
		t.Errorf("New(Threads: 5) = %v, %v; want 5 threads", b, err)
	}
	if _, err := cpu.New(cpu.Config{Threads: -1}); !errors.Is(err, cpu.ErrInvalidConfig) {
		t.Errorf("New(Threads: -1) error = %v, want ErrInvalidConfig", err)
	}
}
