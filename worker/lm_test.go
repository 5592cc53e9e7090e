package worker_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// gocoder is the Go-code model Gearbox ships, with its tokenizer.
var gocoder = sync.OnceValues(func() (*lm.Model, error) { return lm.Load("../testdata/models/gocoder") })

// tinyLM is a small random llama without a tokenizer (prompt_tokens only):
// fast enough for many jobs under the race detector.
var tinyLM = sync.OnceValues(func() (*lm.Model, error) {
	dir, err := os.MkdirTemp("", "gearbox-worker-lm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	c := lm.Config{Arch: lm.Llama, Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Intermediate: 64,
		Vocab: 128, RMSEps: 1e-5, RopeTheta: 10000, MaxPositions: 128, BOS: lm.NoToken, TieEmbeddings: true}
	if err := lm.Synth(filepath.Join(dir, "tiny"), lm.SynthConfig{Config: c, Seed: 9}); err != nil {
		return nil, err
	}
	return lm.Load(filepath.Join(dir, "tiny"))
})

// withLM adds a language model to e's models.
func (e *env) withLM(load func() (*lm.Model, error)) *lm.Model {
	e.t.Helper()
	m, err := load()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.models.PutLM(m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// greedy is the CPU backend's greedy continuation of prompt, n tokens at p
// (no end-of-sequence stop): what a worker must produce.
func greedy(t testing.TB, m *lm.Model, p precision.Format, prompt []int32, n int) []int32 {
	t.Helper()
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return kerneltest.NewSession(t, b, m, p, (len(prompt)+n)/16+2).Generate(prompt, n)
}

func lmPtr[T any](v T) *T { return &v }

var goPrompts = []string{
	"package main\n\nimport (\n\t\"fmt\"\n",
	"// Copyright 2015 The Go Authors. All rights reserved.\n// Use of this source code is governed by a BSD-style\n",
	"func (b *Buffer) Len() int {\n\treturn ",
	"for i := 0; i < len(s); i++ {\n\t\tif s[i] == ",
}

// TestLMGenerateJobs: text prompts for the shipped Go-code model, through a
// real server and worker: each result holds the CPU backend's greedy
// continuation (batch invariance: what shares its steps changes nothing),
// its text, and its accounting.
func TestLMGenerateJobs(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	m := e.withLM(gocoder)
	e.start("w", worker.Config{KVBytes: 8 << 20}, nil)
	tok, err := tokenizer.ParseFiles(tokenizer.Files{Tokenizer: m.Tokenizer, Config: m.TokenizerConfig})
	if err != nil {
		t.Fatal(err)
	}
	const n = 24
	for i, p := range goPrompts {
		j := &gearbox.Job{ID: fmt.Sprintf("gen-%d", i), Model: "gocoder", Precision: precision.BF16,
			LMRequest: gearbox.LMRequest{Prompt: p, MaxTokens: lmPtr(n), Logprobs: 2}}
		if _, err := e.client.Submit(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range e.results(len(goPrompts)) {
		if r.Error != nil {
			t.Fatalf("%s: %v", r.ID, r.Error)
		}
		var i int
		fmt.Sscanf(r.ID, "gen-%d", &i)
		ids := tok.Encode(goPrompts[i], true)
		prompt := make([]int32, len(ids))
		for k, id := range ids {
			prompt[k] = int32(id)
		}
		want := greedy(t, m, precision.BF16, prompt, n)
		if cut := slices.Index(want, 0); cut >= 0 { // the end-of-text token stops it
			want = want[:cut]
		}
		if !slices.Equal(r.Tokens, want) {
			t.Errorf("%s: tokens %v; want the greedy %v", r.ID, r.Tokens, want)
		}
		text, _ := tok.Decode(toInts(r.Tokens), true)
		if r.Text != text || r.Precision != precision.BF16 || r.Usage == nil || r.Usage.PromptTokens != len(prompt) {
			t.Errorf("%s: text %q (want %q), precision %s, usage %+v", r.ID, r.Text, text, r.Precision, r.Usage)
		}
		if len(r.Logprobs) != len(r.Tokens) || len(r.Tokens) > 0 && len(r.Logprobs[0].Top) != 2 {
			t.Errorf("%s: %d logprobs for %d tokens", r.ID, len(r.Logprobs), len(r.Tokens))
		}
		if reason := map[bool]string{true: "length", false: "stop"}[len(want) == n]; r.FinishReason != reason || r.TTFTMs <= 0 {
			t.Errorf("%s: finish %q (want %q), ttft %v ms", r.ID, r.FinishReason, reason, r.TTFTMs)
		}
		t.Logf("%s: %q", r.ID, r.Text)
	}
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, v := range ids {
		out[i] = int(v)
	}
	return out
}

// TestLMStreamAndStop: a streaming job's chunks come in order on its
// reply_to, never split a UTF-8 character, and add up to the result's text,
// which ends before the stop string; the result follows, marked end.
func TestLMStreamAndStop(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.withLM(gocoder)
	e.start("w", worker.Config{KVBytes: 8 << 20}, nil)
	nc := connect(t, e.srv)
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	j := &gearbox.Job{ID: "s1", Model: "gocoder", ReplyTo: inbox, Precision: precision.FP32,
		LMRequest: gearbox.LMRequest{Prompt: goPrompts[0], MaxTokens: lmPtr(60), Stream: true, Stop: []string{"go/token"}}}
	if _, err := e.client.Submit(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var last *gearbox.Result
	for next := 0; last == nil; {
		m, err := sub.NextMsg(60 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Header.Get(gearbox.HeaderStream) {
		case "chunk":
			var c gearbox.StreamChunk
			if err := gearbox.Msgpack.Unmarshal(m.Data, &c); err != nil {
				t.Fatal(err)
			}
			if c.ID != "s1" || c.Index != next {
				t.Fatalf("chunk %+v; want index %d of s1", c, next)
			}
			next++
			text.WriteString(c.Text)
		case "end":
			if last, err = gearbox.DecodeResult(m.Data, gearbox.Msgpack); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("a message without %s: %v", gearbox.HeaderStream, m.Header)
		}
	}
	if last.Error != nil || last.Text != text.String() {
		t.Fatalf("result %q (%v); streamed %q", last.Text, last.Error, text.String())
	}
	if last.FinishReason != "stop" || strings.Contains(last.Text, "go/token") || len(last.Text) == 0 {
		t.Errorf("text %q (finish %s); want it cut before its stop string", last.Text, last.FinishReason)
	}
	t.Logf("streamed %q (finish %s)", last.Text, last.FinishReason)
}

// TestLMBadParameters: every parameter a model must judge is a bad_request
// (or too_large) naming it, with a dead letter.
func TestLMBadParameters(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.withLM(tinyLM) // vocabulary 128, context 128
	e.start("w", worker.Config{}, nil)
	long := make([]int32, 129)
	cases := []struct {
		job  gearbox.Job
		code gearbox.Code
		want string
	}{
		{gearbox.Job{Model: "tiny", LMRequest: gearbox.LMRequest{PromptTokens: []int32{1, 200}}}, gearbox.CodeBadRequest, "prompt_tokens[1] = 200 is outside the vocabulary"},
		{gearbox.Job{Model: "tiny", LMRequest: gearbox.LMRequest{PromptTokens: long}}, gearbox.CodeTooLarge, "the prompt is 129 tokens; model tiny's context is 128"},
		{gearbox.Job{Model: "tiny", LMRequest: gearbox.LMRequest{PromptTokens: []int32{1, 2}, MaxTokens: lmPtr(127)}}, gearbox.CodeBadRequest, "max_tokens 127 is beyond the context"},
		{gearbox.Job{Model: "tiny", LMRequest: gearbox.LMRequest{Prompt: "hello"}}, gearbox.CodeBadRequest, "has no tokenizer.json"},
		{gearbox.Job{Model: "tiny", Input: gearbox.NewTensor(1, 2, []float32{1, 2})}, gearbox.CodeBadRequest, "tiny is a language model"},
		{gearbox.Job{Model: "mlp", LMRequest: gearbox.LMRequest{PromptTokens: []int32{1}}}, gearbox.CodeBadRequest, "mlp is a tensor model"},
		{gearbox.Job{Model: "tiny", LMRequest: gearbox.LMRequest{PromptTokens: []int32{1}, Stream: true}}, gearbox.CodeBadRequest, "stream needs a reply_to"},
		{gearbox.Job{Model: "tiny", LMRequest: gearbox.LMRequest{PromptTokens: []int32{1}, Temperature: lmPtr(-1.0)}}, gearbox.CodeBadRequest, "temperature -1"},
	}
	for i := range cases {
		cases[i].job.ID = fmt.Sprintf("bad-%d", i)
		data, err := gearbox.Msgpack.Marshal(&cases[i].job)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(context.Background(), "gearbox.jobs."+cases[i].job.Model, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range e.results(len(cases)) {
		var i int
		fmt.Sscanf(r.ID, "bad-%d", &i)
		c := cases[i]
		if r.Error == nil || r.Error.Code != c.code || !strings.Contains(r.Error.Message, c.want) {
			t.Errorf("%s: %v; want %s mentioning %q", r.ID, r.Error, c.code, c.want)
		}
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := e.streamMsgs("GEARBOX_DEAD"); n != uint64(len(cases)) {
			return fmt.Errorf("%d dead letters; want %d", n, len(cases))
		}
		return nil
	})
}

// TestLMEmbedAndScore: embed returns the L2-normalised last hidden state,
// score the prompt's log-probabilities, each as a direct step gives them.
func TestLMEmbedAndScore(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	m := e.withLM(tinyLM)
	e.start("w", worker.Config{}, nil)
	prompt := []int32{5, 9, 17, 33, 65, 2, 7}
	ctx := context.Background()
	emb, err := e.client.Do(ctx, &gearbox.Job{ID: "e", Model: "tiny", Precision: precision.FP32, LMRequest: gearbox.LMRequest{Task: gearbox.Embed, PromptTokens: prompt}})
	if err != nil || emb.Error != nil {
		t.Fatal(err, emb)
	}
	score, err := e.client.Do(ctx, &gearbox.Job{ID: "s", Model: "tiny", Precision: precision.FP32, LMRequest: gearbox.LMRequest{Task: gearbox.Score, PromptTokens: prompt}})
	if err != nil || score.Error != nil {
		t.Fatal(err, score)
	}
	b, _ := cpu.New(cpu.Config{})
	s := kerneltest.NewSession(t, b, m, precision.FP32, 4)
	out := s.Step(kernels.Seq{Tokens: prompt, Blocks: s.Alloc(len(prompt)), Want: kernels.WantHidden | kernels.WantLogprobs})[0]
	got, err := emb.Output.Values()
	if err != nil || emb.Output.Rows() != 1 || len(got) != m.Config.Hidden {
		t.Fatalf("embedding %v %v", emb.Output.Shape, err)
	}
	var norm, dot float64
	for i, v := range got {
		norm += float64(v) * float64(v)
		dot += float64(v) * float64(out.Hidden[i])
	}
	var hn float64
	for _, v := range out.Hidden {
		hn += float64(v) * float64(v)
	}
	if math.Abs(norm-1) > 1e-5 || math.Abs(dot/math.Sqrt(hn)-1) > 1e-5 {
		t.Errorf("embedding norm %v, cosine with the hidden state %v; want 1, 1", norm, dot/math.Sqrt(hn))
	}
	if len(score.Logprobs) != len(prompt)-1 {
		t.Fatalf("%d scores; want %d", len(score.Logprobs), len(prompt)-1)
	}
	for i, lp := range score.Logprobs {
		if lp.Token != prompt[i+1] || lp.Logprob != out.Logprobs[i] {
			t.Errorf("score %d: %+v; want token %d logprob %v", i, lp, prompt[i+1], out.Logprobs[i])
		}
	}
}

// TestLMDeadline: a generation still running at its deadline ends with
// finish_reason deadline and the tokens so far.
func TestLMDeadline(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.withLM(gocoder)
	e.start("w", worker.Config{KVBytes: 8 << 20}, nil)
	// A loaded machine may not start the job before a short deadline (it
	// is then expired, not generated): the deadline doubles until one
	// lands mid-generation.
	for i, d := 0, 500*time.Millisecond; d <= 16*time.Second; i, d = i+1, 2*d {
		j := &gearbox.Job{ID: fmt.Sprintf("late-%d", i), Model: "gocoder", Deadline: time.Now().Add(d).UnixMilli(), Precision: precision.FP32,
			LMRequest: gearbox.LMRequest{Prompt: goPrompts[1], MaxTokens: lmPtr(900), Temperature: lmPtr(1.0)}}
		r, err := e.client.Do(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		if r.Error != nil && r.Error.Code == gearbox.CodeExpired {
			t.Logf("deadline %s passed before the job started; doubling it", d)
			continue
		}
		if r.Error != nil || r.FinishReason != "deadline" || len(r.Tokens) == 0 || len(r.Tokens) >= 900 {
			t.Errorf("deadline %s: %v, finish %q after %d tokens; want deadline with some tokens", d, r.Error, r.FinishReason, len(r.Tokens))
		}
		return
	}
	t.Error("every deadline passed before its job started")
}

// TestLMManyJobsKillOne: generation jobs from three producers over three
// workers, one killed mid-run: exactly one result per id, each the greedy
// continuation, with a KV cache small enough that engines preempt.
func TestLMManyJobsKillOne(t *testing.T) {
	t.Parallel()
	jobs := 1000
	if testing.Short() {
		jobs = 200
	}
	e := setup(t, gearbox.StreamsConfig{AckWait: 2 * time.Second})
	m := e.withLM(tinyLM)
	cfg := worker.Config{KVBytes: 64 << 10} // 32 blocks of 16 positions
	victim := e.start("victim", cfg, nil)
	// The survivors count their preemptions: how the jobs split between
	// them depends on the host's load.
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	e.start("w1", worker.Config{KVBytes: cfg.KVBytes, Metrics: worker.NewMetrics(regs[0])}, nil)
	e.start("w2", worker.Config{KVBytes: cfg.KVBytes, Metrics: worker.NewMetrics(regs[1])}, nil)
	prompts := make([][]int32, jobs)
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Go(func() {
			c, err := gearbox.NewClient(connect(t, e.srv))
			if err != nil {
				t.Error(err)
				return
			}
			for i := p; i < jobs; i += 3 {
				prompt := randTokens(i, m.Config.Vocab)
				prompts[i] = prompt
				j := &gearbox.Job{ID: fmt.Sprintf("lm-%04d", i), Model: "tiny", Precision: precision.BF16,
					LMRequest: gearbox.LMRequest{PromptTokens: prompt, MaxTokens: lmPtr(24 + i%17)}}
				if _, err := c.SubmitAsync(j); err != nil {
					t.Error(err)
					return
				}
			}
			<-c.JetStream().PublishAsyncComplete()
		})
	}
	wg.Wait()
	checkFor(t, 60*time.Second, 5*time.Millisecond, func() error {
		if n := e.streamMsgs("GEARBOX_RESULTS"); n < uint64(jobs/5) {
			return fmt.Errorf("%d results", n)
		}
		return nil
	})
	victim.kill()
	seen := map[string]bool{}
	for _, r := range e.results(jobs) {
		if r.Error != nil || seen[r.ID] {
			t.Fatalf("%s: %v (seen before: %v)", r.ID, r.Error, seen[r.ID])
		}
		seen[r.ID] = true
		var i int
		fmt.Sscanf(r.ID, "lm-%04d", &i)
		if want := greedyUntilEOS(t, m, prompts[i], 24+i%17); !slices.Equal(r.Tokens, want) {
			t.Errorf("%s: %v; want %v", r.ID, r.Tokens, want)
		}
	}
	// The cache was small enough that the survivors' engines preempted
	// sequences.
	preempted := 0.0
	for _, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "gearbox_lm_preemptions_total" {
				for _, m := range mf.GetMetric() {
					preempted += m.GetCounter().GetValue()
				}
			}
		}
	}
	if preempted == 0 {
		t.Errorf("no preemptions on caches of 32 blocks; want the KV budget exhausted")
	}
	t.Logf("w1 and w2 preempted %v sequences", preempted)
}

func greedyUntilEOS(t testing.TB, m *lm.Model, prompt []int32, n int) []int32 {
	want := greedy(t, m, precision.BF16, prompt, n)
	for i, tok := range want {
		if slices.Contains(m.Generation.EOS, tok) {
			return want[:i]
		}
	}
	return want
}

func randTokens(seed, vocab int) []int32 {
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	n := 3 + seed%20
	out := make([]int32, n)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = int32(x % uint64(vocab))
	}
	return out
}
