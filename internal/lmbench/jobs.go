package lmbench

import (
	"fmt"
	"math/rand/v2"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// job is one job of the workload, the same in both phases.
type job struct {
	model     int // index into the run's models
	prompt    []int32
	maxTokens int
	seed      uint64
}

// jobList draws n jobs from a PCG seeded by seed: each a model chosen
// uniformly, a prompt of a length uniform in [pmin, pmax] of token ids
// uniform below that model's vocabulary, and a max_tokens uniform in
// [omin, omax].
func jobList(seed uint64, n int, vocabs []int, pmin, pmax, omin, omax int) []job {
	r := rand.New(rand.NewPCG(seed, 0x6c6d62))
	jobs := make([]job, n)
	for i := range jobs {
		m := r.IntN(len(vocabs))
		p := make([]int32, pmin+r.IntN(pmax-pmin+1))
		for k := range p {
			p[k] = int32(r.IntN(vocabs[m]))
		}
		jobs[i] = job{model: m, prompt: p, maxTokens: omin + r.IntN(omax-omin+1), seed: r.Uint64()}
	}
	return jobs
}

// request is job j of a phase as a gearbox job: id <tag>-<i>, model name,
// at precision p.
func (j *job) request(tag string, i int, name string, p precision.Format, temp float64) *gearbox.Job {
	maxTokens, t, seed := j.maxTokens, temp, j.seed
	return &gearbox.Job{ID: fmt.Sprintf("%s-%d", tag, i), Model: name, Precision: p,
		LMRequest: gearbox.LMRequest{PromptTokens: j.prompt, MaxTokens: &maxTokens, Temperature: &t, Seed: &seed}}
}
