package engine_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/precision"
)

// sharedPrefix is n requests of one random prefix of prefix tokens and a
// distinct random suffix of suffix tokens, generating max tokens; with
// requests' sampling (half greedy, half sampled with a seed).
func sharedPrefix(n, prefix, suffix, max int) []request {
	reqs := requests(n)
	r := rand.New(rand.NewPCG(7, 8))
	head := make([]int32, prefix)
	for j := range head {
		head[j] = int32(r.IntN(256))
	}
	for i := range reqs {
		reqs[i].prompt = slices.Clone(head)
		for range suffix {
			reqs[i].prompt = append(reqs[i].prompt, int32(r.IntN(256)))
		}
		reqs[i].max = max
	}
	return reqs
}

// TestEnginePrefixSameTokens: sequences sharing a prompt prefix produce
// exactly the tokens an engine without prefix sharing produces, while
// their prefix is prefilled once; after they end every block is free or
// cached.
func TestEnginePrefixSameTokens(t *testing.T) {
	m, b := setup(t)
	reqs := sharedPrefix(10, 40, 3, 12)
	want, _ := generate(t, start(t, b, m, precision.BF16, 128, engine.Config{NoPrefixCache: true}), reqs)
	// A small budget: the prefix takes several steps, and the others
	// arrive while it is prefilling.
	e := start(t, b, m, precision.BF16, 128, engine.Config{TokenBudget: 16})
	got, _ := generate(t, e, reqs)
	for i := range reqs {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("request %d: %v with sharing; want %v", i, got[i], want[i])
		}
	}
	st := e.Stats()
	if want := 9 * 32; st.ReusedTokens != want { // two full blocks of the prefix, for each but the first
		t.Errorf("%d tokens reused; want %d", st.ReusedTokens, want)
	}
	if st.BlocksUsed != 0 || st.BlocksCached == 0 || st.BlocksFree+st.BlocksCached != 128 {
		t.Errorf("blocks after the end: %d used, %d cached, %d free; want 0, some, the rest of 128", st.BlocksUsed, st.BlocksCached, st.BlocksFree)
	}
	// Again, on the cache the first round left: everything still reuses.
	again, _ := generate(t, e, reqs)
	if !slices.EqualFunc(again, want, slices.Equal) {
		t.Errorf("second round differs: %v; want %v", again, want)
	}
	if st2 := e.Stats(); st2.ReusedTokens-st.ReusedTokens < 10*32 {
		t.Errorf("%d tokens reused in the second round; want at least %d", st2.ReusedTokens-st.ReusedTokens, 10*32)
	}
}

// TestEnginePrefixEmbed: an embedding over a cached prefix is the one a
// direct step over the whole prompt gives.
func TestEnginePrefixEmbed(t *testing.T) {
	m, b := setup(t)
	reqs := sharedPrefix(2, 40, 3, 2)
	e := start(t, b, m, precision.FP32, 64, engine.Config{})
	generate(t, e, reqs[:1])
	var wg sync.WaitGroup
	var emb *engine.Outcome
	wg.Add(1)
	if err := e.Add(context.Background(), &engine.Seq{Task: engine.Embed, Prompt: reqs[1].prompt,
		Done: func(o *engine.Outcome) { emb = o; wg.Done() }}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if e.Stats().ReusedTokens != 32 {
		t.Errorf("%d tokens reused; want 32", e.Stats().ReusedTokens)
	}
	kv, err := b.NewKVCache(m, precision.FP32, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	outs, err := b.Step(context.Background(), m, precision.FP32, kv, &kernels.Batch{Seqs: []kernels.Seq{{
		Tokens: reqs[1].prompt, Blocks: []int32{0, 1, 2, 3}[:(len(reqs[1].prompt)+15)/16], Want: kernels.WantHidden}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(emb.Hidden, outs[0].Hidden) {
		t.Errorf("embedding over a shared prefix differs from a direct step's")
	}
}

// TestEnginePrefixPreemption: on a cache too small for all of them,
// sequences sharing a prefix are preempted and recomputed, reusing the
// cached prefix, and still produce exactly the tokens of an engine
// without sharing or preemption.
func TestEnginePrefixPreemption(t *testing.T) {
	// 2 prefix blocks and 18 for 8 sequences growing to 4 or 5.
	small, preempted := preempting(t, sharedPrefix(8, 32, 3, 60), 20, engine.Config{})
	st := small.Stats()
	if preempted == 0 || st.ReusedTokens <= 7*32 {
		t.Errorf("%d preemptions, %d tokens reused; want some preemptions, re-admissions reusing", preempted, st.ReusedTokens)
	}
	if st.BlocksUsed != 0 || st.BlocksFree+st.BlocksCached != 20 {
		t.Errorf("blocks after the end: %d used, %d cached, %d free", st.BlocksUsed, st.BlocksCached, st.BlocksFree)
	}
}
