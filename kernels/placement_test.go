package kernels

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		spec             string
		workers, visible int
		want             string // the devices, space-separated
		err              string // what the error says, when one is wanted
	}{
		{"cpu", 1, 0, "cpu", ""},
		{"cpu", 3, 8, "cpu cpu cpu", ""},
		{"cuda:1", 3, 2, "cuda:1 cuda:1 cuda:1", ""},      // pinned: every worker on that GPU
		{"cuda:5", 2, 2, "cuda:5 cuda:5", ""},             // opening it says it is not there
		{"cuda", 1, 4, "cuda:0", ""},                      // one worker: the first GPU only
		{"cuda", 4, 4, "cuda:0 cuda:1 cuda:2 cuda:3", ""}, // one per GPU
		{"cuda", 2, 4, "cuda:0 cuda:1", ""},
		{"cuda", 5, 2, "cuda:0 cuda:1 cuda:0 cuda:1 cuda:0", ""},
		{"cuda", 2, 0, "", "no CUDA device is visible"},
		{"auto", 3, 2, "cuda:0 cuda:1 cuda:0", ""},
		{"", 2, 8, "cuda:0 cuda:1", ""},
		{"auto", 3, 0, "cpu cpu cpu", ""},
		{"cuda:2,cuda:0", 3, 4, "cuda:2 cuda:0 cuda:2", ""},
		{"cuda:1, cuda:3", 1, 4, "cuda:1", ""},
		{"cuda:0,cuda:0", 2, 2, "", "names cuda:0 twice"},
		{"cuda:0,cuda:00", 2, 2, "", "names cuda:0 twice"},
		{"cuda:0,cpu", 2, 2, "", `entry "cpu" is not cuda:N`},
		{"cuda:0,", 2, 2, "", `entry "" is not cuda:N`},
		{"cuda:0,cuda:-1", 2, 2, "", `entry "cuda:-1" is not cuda:N`},
		{"cpu", 0, 0, "", "0 workers"},
	} {
		got, err := Place(tc.spec, tc.workers, tc.visible)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Place(%q, %d, %d) = %v, %v; want an error saying %q", tc.spec, tc.workers, tc.visible, got, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("Place(%q, %d, %d) = %v, %v; want %s", tc.spec, tc.workers, tc.visible, got, err, tc.want)
		}
	}
}

// closing is a named Backend that counts its Close calls.
type closing struct {
	named
	closed *map[string]int
}

func (c closing) Close() error { (*c.closed)[string(c.named)]++; return nil }

// TestOpenWorkers: each device is opened once and shared by its workers;
// "auto" falls back to the CPU only when cuda:0 does not open; a failure
// closes what was opened.
func TestOpenWorkers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     string
		workers  int
		visible  int    // the CUDA counter's answer
		countErr error  // or its error
		fail     string // a CUDA device that does not open
		want     string // each worker's device
		opened   string // the devices opened, in order
		fallback bool
		err      string
	}{
		{name: "cpu shared", spec: "cpu", workers: 3, visible: 2, want: "cpu cpu cpu", opened: "cpu"},
		{name: "pinned", spec: "CUDA:1", workers: 2, visible: 2, want: "cuda:1 cuda:1", opened: "cuda:1"},
		{name: "spread", spec: "cuda", workers: 3, visible: 2, want: "cuda:0 cuda:1 cuda:0", opened: "cuda:0 cuda:1"},
		{name: "fewer workers than GPUs", spec: "cuda", workers: 2, visible: 8, want: "cuda:0 cuda:1", opened: "cuda:0 cuda:1"},
		{name: "auto spreads", spec: "auto", workers: 4, visible: 4, want: "cuda:0 cuda:1 cuda:2 cuda:3", opened: "cuda:0 cuda:1 cuda:2 cuda:3"},
		{name: "auto, no driver", spec: "", workers: 2, countErr: errNoDriver, fail: "cuda:0", want: "cpu cpu", opened: "cpu", fallback: true},
		{name: "auto, cuda:0 fails", spec: "auto", workers: 2, visible: 2, fail: "cuda:0", want: "cpu cpu", opened: "cpu", fallback: true},
		{name: "auto, cuda:1 fails", spec: "auto", workers: 2, visible: 2, fail: "cuda:1", err: "cuda:1 (for worker 1): no driver", opened: "cuda:0"},
		{name: "list", spec: "cuda:1,cuda:0", workers: 3, visible: 2, want: "cuda:1 cuda:0 cuda:1", opened: "cuda:1 cuda:0"},
		{name: "cuda, no driver", spec: "cuda", workers: 2, countErr: errNoDriver, err: "counting CUDA devices: no driver"},
		{name: "pinned fails", spec: "cuda:0", workers: 2, visible: 1, fail: "cuda:0", err: "no driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := map[string]int{}
			var opened []string
			r := newRegistry()
			open := func(spec string) (Backend, error) {
				if spec == tc.fail {
					return nil, errNoDriver
				}
				opened = append(opened, spec)
				return closing{named(spec), &closed}, nil
			}
			r.register("cpu", open)
			r.register("cuda", open)
			r.registerCounter("cuda", func() (int, error) { return tc.visible, tc.countErr })
			p, err := r.openWorkers(tc.spec, tc.workers)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("OpenWorkers(%q, %d): %v; want an error saying %q", tc.spec, tc.workers, err, tc.err)
				}
				for _, d := range opened {
					if closed[d] != 1 {
						t.Errorf("%s closed %d times after the failure; want once", d, closed[d])
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenWorkers(%q, %d): %v", tc.spec, tc.workers, err)
			}
			var got, backends []string
			for _, b := range p.Workers {
				got = append(got, b.Name())
			}
			for _, b := range p.Backends {
				backends = append(backends, b.Name())
			}
			if strings.Join(got, " ") != tc.want || strings.Join(opened, " ") != tc.opened || strings.Join(backends, " ") != tc.opened {
				t.Errorf("workers on %v, opened %v, Backends %v; want %s, %s", got, opened, backends, tc.want, tc.opened)
			}
			if (p.Fallback != nil) != tc.fallback || tc.fallback && !errors.Is(p.Fallback, errNoDriver) {
				t.Errorf("Fallback %v; want one: %v", p.Fallback, tc.fallback)
			}
			if err := p.Close(); err != nil || fmt.Sprint(closed) != fmt.Sprint(countEach(opened)) {
				t.Errorf("Close: %v, closed %v; want each device closed once", err, closed)
			}
		})
	}
}

func countEach(s []string) map[string]int {
	m := map[string]int{}
	for _, x := range s {
		m[x]++
	}
	return m
}

func TestCount(t *testing.T) {
	r := newRegistry()
	r.register("cpu", opener(nil))
	r.register("cuda", opener(nil))
	r.registerCounter("cuda", func() (int, error) { return 4, nil })
	if n, err := r.count("cuda"); n != 4 || err != nil {
		t.Errorf("count(cuda) = %d, %v; want 4", n, err)
	}
	if n, err := r.count("cpu"); n != 1 || err != nil {
		t.Errorf("count(cpu) = %d, %v; want 1: a kind without a counter has one device", n, err)
	}
	if _, err := r.count("tpu"); !errors.Is(err, ErrNoBackend) {
		t.Errorf("count(tpu) error %v; want ErrNoBackend", err)
	}
}
