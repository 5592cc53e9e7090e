package cpu_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(kernels.Kinds(), "cpu") {
		t.Fatalf("kernels.Kinds() = %v, want it to include cpu", kernels.Kinds())
	}
	for _, spec := range []string{"cpu", " CPU "} {
		b, fallback, err := kernels.Open(spec)
		if err != nil || fallback != nil {
			t.Fatalf("kernels.Open(%q) = _, %v, %v; want nil errors", spec, fallback, err)
		}
		if got := b.Name(); got != "cpu" {
			t.Errorf("Name() = %q, want cpu", got)
		}
		if _, ok := b.(*cpu.Backend); !ok {
			t.Errorf("kernels.Open(%q) returned %T, want *cpu.Backend", spec, b)
		}
		m := &model.Model{InputFeatures: 2, OutputFeatures: 2, Layers: []model.Layer{{Op: model.ReLU, In: 2, Out: 2}}}
		got, err := b.Forward(context.Background(), m, precision.FP32, []float32{-1, 1}, 1)
		if err != nil || !slices.Equal(got, []float32{0, 1}) {
			t.Errorf("Forward(relu of -1, 1) = %v, %v; want [0 1], nil", got, err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
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
