package worker

import (
	"context"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestVersionsOfLanguageModels: the counter serves language models too.
// A replaced version is evicted from the CPU backend (EvictLM) when its
// last user lets go, and not before; a version replaced while unused is
// evicted at once; one put back is current again.
func TestVersionsOfLanguageModels(t *testing.T) {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Two architectures' models stand in for two versions of one model.
	old, cur := kt.LMModel(t, lm.Llama), kt.LMModel(t, lm.Qwen2)
	step := func(m *lm.Model) {
		kt.NewSession(t, b, m, precision.BF16, 1).Step(kernels.Seq{Tokens: []int32{1, 2}, Blocks: []int32{0}})
	}
	v := newVersions[*lm.Model]()
	evictIf := func(evict bool, m *lm.Model) {
		if evict {
			b.EvictLM(m)
		}
	}
	v.add(old)
	v.add(old)
	step(old)
	if v.retire(old) {
		t.Error("retire reported a version with two users to evict")
	}
	step(cur)
	if v.release(old) {
		t.Error("release reported a version with a user left to evict")
	}
	if got := b.CachedWeights(); got != 2 {
		t.Errorf("%d weight sets cached while the old version has a user, want 2", got)
	}
	evict := v.release(old)
	if !evict {
		t.Error("the retired version's last release did not report it")
	}
	evictIf(evict, old)
	if got := b.CachedWeights(); got != 1 {
		t.Errorf("%d weight sets cached after the old version's eviction, want 1", got)
	}
	if v.release(old) {
		t.Error("releasing a version nobody holds reported it again")
	}
	if vs, retired := v.inUse(); vs != 0 || retired != 0 {
		t.Errorf("inUse() = %d, %d; want none", vs, retired)
	}

	evict = v.retire(cur)
	if !evict {
		t.Error("retiring an unused version did not report it")
	}
	evictIf(evict, cur)
	if got := b.CachedWeights(); got != 0 {
		t.Errorf("%d weight sets cached after both versions' eviction, want 0", got)
	}

	v.add(cur)
	v.retire(cur)
	v.unretire(cur) // put back
	if v.release(cur) {
		t.Error("a version put back was reported for eviction")
	}
}

// TestModelsSwapUnderLoad: goroutines take the current version, run it
// and release it, some lending it to a check as the worker does, while
// versions are put one after another. Once all are done, the backend holds
// the last version's weights only: no version is evicted under a pass that
// would convert it again. Run it with -race.
func TestModelsSwapUnderLoad(t *testing.T) {
	b, err := cpu.New(cpu.Config{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	version := func(seed int64) *model.Model {
		m, err := model.Synth(model.SynthConfig{Name: "mlp", Dims: []int{16, 32, 8}, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	s := NewModels(version(0))
	s.evictFrom(b)
	s.evictFrom(b) // once is enough
	if len(s.backends) != 1 {
		t.Errorf("%d backends to evict from after registering one twice, want 1", len(s.backends))
	}
	ctx := context.Background()
	in := make([]float32, 16)
	run := func(m *model.Model) {
		if _, err := b.Forward(ctx, m, precision.BF16, in, 1); err != nil {
			t.Error(err)
		}
	}
	stop := make(chan struct{})
	ran := make(chan struct{}, 64) // a pass done, for the swaps to wait on
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m, err := s.acquire(ctx, "mlp")
				if err != nil {
					t.Error(err)
					return
				}
				run(m)
				select {
				case ran <- struct{}{}:
				default:
				}
				if (g+i)%3 == 0 { // a check, outliving the job
					release := s.hold(m)
					wg.Go(func() { run(m); release(); release() })
				}
				s.release(m)
			}
		})
	}
	for seed := range int64(30) {
		for range 4 { // swap amid passes
			<-ran
		}
		s.Put(version(seed + 1))
	}
	close(stop)
	wg.Wait()
	if vs, retired := s.users.inUse(); vs != 0 || retired != 0 {
		t.Errorf("every user done: %d versions in use, %d retired; want none", vs, retired)
	}
	if got := b.CachedWeights(); got > 1 {
		t.Errorf("%d weight sets cached after 30 swaps, want at most the current version's 1", got)
	}
	cur, _ := s.Get(ctx, "mlp")
	b.Evict(cur)
	if got := b.CachedWeights(); got != 0 {
		t.Errorf("%d weight sets cached besides the current version's, want 0", got)
	}
}
