package quality

import (
	"math/rand/v2"
	"sync"
	"time"
)

// sampler decides which batches (or finished sequences) of each model are
// checked: a random fraction, and any of a model not checked for the
// interval. It is safe for concurrent use.
type sampler struct {
	sample   float64
	interval time.Duration

	mu   sync.Mutex
	rng  *rand.Rand
	last map[string]time.Time // last check queued per model
}

func newSampler(cfg Config) *sampler {
	seed := uint64(time.Now().UnixNano())
	return &sampler{
		sample: cfg.Sample, interval: cfg.Interval,
		rng:  rand.New(rand.NewPCG(seed, seed>>32^0x9e3779b97f4a7c15)),
		last: map[string]time.Time{},
	}
}

// draw reports whether model's work done at now is to be checked: the
// model is due (not checked for the interval) or the draw falls under the
// sample rate.
func (s *sampler) draw(now time.Time, model string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	due := s.interval > 0 && now.Sub(s.last[model]) >= s.interval
	return due || s.sample > 0 && s.rng.Float64() < s.sample
}

// perm is a random permutation of 0 to n−1.
func (s *sampler) perm(n int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Perm(n)
}

// checked records that a check of model was queued at now.
func (s *sampler) checked(now time.Time, model string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[model] = now
}
