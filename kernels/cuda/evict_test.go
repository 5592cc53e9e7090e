//go:build cgo

package cuda

import (
	"context"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
)

// TestEvictFreesDeviceMemory follows a model pushed again and again, as a
// worker does: each new version runs at every precision the device has,
// three times each (weights uploaded, graphs captured), and then the
// version it replaced is evicted. The device memory in use must come back
// to its level after the first version every time: without Evict it grows
// by a version's weights and graphs (about 130 MiB here) per push. The
// device must be otherwise idle: cuMemGetInfo counts every process.
func TestEvictFreesDeviceMemory(t *testing.T) {
	b := newTestBackend(t, Config{})
	ctx := context.Background()
	state := func() (used uint64, weights, graphs int) {
		err := b.do(ctx, func(d *devState) error {
			if err := d.stream.sync(); err != nil {
				return err
			}
			free, total, err := cuMemInfo()
			used, weights, graphs = total-free, len(d.weights), len(d.graphs)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return used, weights, graphs
	}
	const rows = 16
	in := make([]float32, rows*1024)
	for i := range in {
		in[i] = float32(i%97)/50 - 1
	}
	formats := b.Capabilities().Supported()
	run := func(seed int64) *model.Model {
		m, err := model.Synth(model.SynthConfig{Name: "pushed", Dims: []int{1024, 4096, 1024}, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range formats {
			for range 3 {
				if _, err := b.Forward(ctx, m, p, in, rows); err != nil {
					t.Fatalf("version %d at %s: %v", seed, p, err)
				}
			}
		}
		return m
	}

	cur := run(1)
	base, weights, oneVersion := state()
	t.Logf("one version at %v: %d weight sets, %d graphs, %d MiB of device memory in use", formats, weights, oneVersion, base>>20)
	const slack = 32 << 20 // well under one version's weights
	for v := int64(2); v <= 6; v++ {
		next := run(v)
		grown, _, _ := state()
		b.Evict(cur)
		cur = next
		used, weights, graphs := state()
		t.Logf("version %d: %d MiB in use before evicting version %d, %d MiB after", v, grown>>20, v-1, used>>20)
		if used > base+slack {
			t.Errorf("version %d: %d MiB in use after evicting version %d, %d MiB after version 1; want it back within %d MiB",
				v, used>>20, v-1, base>>20, slack>>20)
		}
		if weights != len(formats) {
			t.Errorf("version %d: %d weight sets cached, want %d (the current version's)", v, weights, len(formats))
		}
		if graphs != oneVersion {
			t.Errorf("version %d: %d graphs, want %d (the current version's, kept through the old one's eviction)", v, graphs, oneVersion)
		}
		if grown <= used {
			t.Errorf("version %d: Evict freed nothing (%d MiB in use before, %d after)", v, grown>>20, used>>20)
		}
	}
	b.Evict(cur)
	if _, weights, graphs := state(); weights != 0 || graphs != 0 {
		t.Errorf("after evicting every version: %d weight sets, %d graphs; want none", weights, graphs)
	}
	b.Close()
	b.Evict(cur) // after Close: nothing to do, and no panic
}
