package kernels

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// named is a Backend that only has a name: enough to tell which opener the
// registry called.
type named string

func (n named) Name() string { return string(n) }
func (n named) Capabilities() precision.Capabilities {
	return precision.Capabilities{Device: string(n)}
}
func (n named) Forward(context.Context, *model.Model, precision.Format, []float32, int) ([]float32, error) {
	return nil, ErrUnsupported
}
func (n named) Evict(*model.Model) {}
func (n named) Close() error       { return nil }

// opener opens named(spec), or fails with err when it is set.
func opener(err error) Opener {
	return func(spec string) (Backend, error) {
		if err != nil {
			return nil, err
		}
		return named(spec), nil
	}
}

var errNoDriver = errors.New("no driver")

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		openers  map[string]Opener
		spec     string
		want     string // the backend's name, "" for an error
		fallback error  // nil, or what fallback must wrap
		err      string // what err must say
	}{
		{"exact cpu", map[string]Opener{"cpu": opener(nil)}, "cpu", "cpu", nil, ""},
		{"case and spaces", map[string]Opener{"cpu": opener(nil)}, "  CPU ", "cpu", nil, ""},
		{"exact cuda", map[string]Opener{"cpu": opener(nil), "cuda": opener(nil)}, "cuda:1", "cuda:1", nil, ""},
		{"exact cuda fails", map[string]Opener{"cpu": opener(nil), "cuda": opener(errNoDriver)}, "cuda:0", "", nil, "no driver"},
		{"unknown kind", map[string]Opener{"cpu": opener(nil), "cuda": opener(nil)}, "tpu:0", "", nil, `no such backend "tpu" (registered: cpu, cuda)`},
		{"auto with cuda", map[string]Opener{"cpu": opener(nil), "cuda": opener(nil)}, "auto", "cuda:0", nil, ""},
		{"empty is auto", map[string]Opener{"cpu": opener(nil), "cuda": opener(nil)}, "", "cuda:0", nil, ""},
		{"auto, cuda fails", map[string]Opener{"cpu": opener(nil), "cuda": opener(errNoDriver)}, "Auto", "cpu", errNoDriver, ""},
		{"auto, no cuda built in", map[string]Opener{"cpu": opener(nil)}, "auto", "cpu", ErrNoBackend, ""},
		{"auto, nothing", map[string]Opener{}, "auto", "", ErrNoBackend, `no such backend "cpu"`},
		{"opener returns nothing", map[string]Opener{"cpu": func(string) (Backend, error) { return nil, nil }}, "cpu", "", nil, "neither a backend nor an error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry()
			for k, o := range tc.openers {
				r.register(k, o)
			}
			b, fallback, err := r.open(tc.spec)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Open(%q) = %v, _, %v; want an error saying %q", tc.spec, b, err, tc.err)
				}
			} else if err != nil || b == nil || b.Name() != tc.want {
				t.Fatalf("Open(%q) = %v, _, %v; want backend %s", tc.spec, b, err, tc.want)
			}
			if tc.fallback == nil && fallback != nil {
				t.Errorf("Open(%q) fallback = %v, want nil", tc.spec, fallback)
			}
			if tc.fallback != nil && !errors.Is(fallback, tc.fallback) {
				t.Errorf("Open(%q) fallback = %v, want it to wrap %v", tc.spec, fallback, tc.fallback)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	r := newRegistry()
	r.register("cuda", opener(nil))
	r.register("cpu", opener(nil))
	if got, want := r.kinds(), []string{"cpu", "cuda"}; !slices.Equal(got, want) {
		t.Errorf("kinds() = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name string
		kind string
		open Opener
		want string
	}{
		{"twice", "cpu", opener(nil), "Register called twice for cpu"},
		{"nil opener", "tpu", nil, "Register opener is nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if p, _ := recover().(string); !strings.Contains(p, tc.want) {
					t.Errorf("panic %q, want one saying %q", p, tc.want)
				}
			}()
			r.register(tc.kind, tc.open)
		})
	}
}

// TestDefaultRegistry: the package functions use one registry, which this
// test binary (no backend imported) leaves empty.
func TestDefaultRegistry(t *testing.T) {
	if got := Kinds(); len(got) != 0 {
		t.Errorf("Kinds() = %v in a binary that imports no backend, want none", got)
	}
	if _, _, err := Open("auto"); !errors.Is(err, ErrNoBackend) {
		t.Errorf("Open(auto) with no backend: %v, want ErrNoBackend", err)
	}
}
