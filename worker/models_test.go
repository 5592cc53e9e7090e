package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/promtest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// followStore makes e's model set empty, fetching from the object store
// and following it until the test ends.
func (e *env) followStore() {
	bucket := gearbox.DefaultSubjects.ModelBucket()
	e.models = worker.NewModels()
	e.models.Fetch = func(ctx context.Context, name string) (*model.Model, error) {
		return model.Fetch(ctx, e.js, bucket, name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	go e.models.Follow(ctx, e.js, bucket, zerolog.Nop())
}

// push pushes a 16→32→8 MLP called mlp with weights from seed to the
// object store, and returns it as pushed.
func (e *env) push(seed int64) *model.Model {
	e.t.Helper()
	m, err := model.Synth(model.SynthConfig{Name: "mlp", Dims: []int{16, 32, 8}, Seed: seed})
	if err != nil {
		e.t.Fatal(err)
	}
	dir := filepath.Join(e.t.TempDir(), "mlp")
	if err := model.Save(m, dir); err != nil {
		e.t.Fatal(err)
	}
	pm, err := model.Push(context.Background(), e.js, gearbox.DefaultSubjects.ModelBucket(), dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return pm
}

// TestModelsFromObjectStore: a worker with no models on disk serves a model
// once it is pushed to the object store, and swaps in a new version when it
// is pushed again.
func TestModelsFromObjectStore(t *testing.T) {
	e := setup(t, gearbox.StreamsConfig{})
	e.followStore()
	e.start("w", worker.Config{}, nil)
	ctx := context.Background()

	r, err := e.client.Do(ctx, e.job("before-push", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Error == nil || r.Error.Code != gearbox.CodeUnknownModel {
		t.Fatalf("before push: %+v; want unknown_model", r)
	}

	attempt := 0
	for _, seed := range []int64{7, 8} {
		e.m = e.push(seed)
		// The push reaches the worker through the watch; poll until a job
		// (a new id each time: the job stream drops repeated ids) is
		// answered by this version.
		checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			attempt++
			j := e.job(fmt.Sprintf("after-push-%d", attempt), 2, uint64(seed))
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			r, err := e.client.Do(dctx, j)
			if err != nil {
				return err
			}
			return e.outputErr(j, r, 1e-5) // an older version answered: not yet

		})
	}
}

// TestMetrics: the worker counts jobs by outcome and observes batches.
func TestMetrics(t *testing.T) {
	e := setup(t, gearbox.StreamsConfig{})
	reg := prometheus.NewRegistry()
	met := worker.NewMetrics(reg)
	e.start("w", worker.Config{Metrics: met}, nil)
	ctx := context.Background()
	for i := range 5 {
		if _, err := e.client.Do(ctx, e.job("ok-"+string(rune('a'+i)), 3, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	bad := e.job("bad", 1, 1)
	bad.Input = gearbox.NewTensor(1, 3, []float32{1, 2, 3})
	if _, err := e.client.Do(ctx, bad); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := testutil.ToFloat64(met.Completed("mlp", "fp32")); got != 5 {
			return errorf("completed = %v; want 5", got)
		}
		if got := testutil.ToFloat64(met.Failed("mlp", gearbox.CodeShapeMismatch)); got != 1 {
			return errorf("failed{shape_mismatch} = %v; want 1", got)
		}
		return nil
	})
	if n, err := testutil.GatherAndCount(reg, "gearbox_batch_rows", "gearbox_queue_seconds", "gearbox_compute_seconds"); err != nil || n != 3 {
		t.Errorf("histograms gathered %d, %v; want 3 series", n, err)
	}
	m, err := e.models.Get(ctx, "mlp")
	if err != nil {
		t.Fatal(err)
	}
	if v := promtest.Value(t, reg, "gearbox_model_info", map[string]string{"model": "mlp", "version": m.Version, "digest": m.Digest}); v != 1 {
		t.Errorf("gearbox_model_info{mlp, %s, %.12s} = %v; want 1", m.Version, m.Digest, v)
	}
	if got := testutil.ToFloat64(met.InflightRows()); got != 0 {
		t.Errorf("in-flight rows %v after every job was answered; want 0", got)
	}
}

// TestLanguageModelFromObjectStore: a worker with no models on disk
// answers a generation job for a language model that is not pushed yet
// with unknown_model, and once it is pushed (the checkpoint's files, as
// `gearbox model push` puts them) fetches it and generates what the CPU
// backend generates from the directory's copy.
func TestLanguageModelFromObjectStore(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.followStore()
	bucket := gearbox.DefaultSubjects.ModelBucket()
	e.models.FetchLM = func(ctx context.Context, name string) (*lm.Model, error) {
		return lm.Fetch(ctx, e.js, bucket, name)
	}
	e.models.NegativeTTL = time.Millisecond
	e.start("w", worker.Config{KVBytes: 4 << 20}, nil)
	ctx := context.Background()
	job := func(id string) *gearbox.Job {
		return &gearbox.Job{ID: id, Model: "gocoder", Precision: precision.FP32,
			LMRequest: gearbox.LMRequest{PromptTokens: []int32{5, 6, 7, 8}, MaxTokens: lmPtr(8)}}
	}
	r, err := e.client.Do(ctx, job("before-push"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Error == nil || r.Error.Code != gearbox.CodeUnknownModel {
		t.Fatalf("before the push: error %v; want unknown_model", r.Error)
	}
	m, err := lm.Push(ctx, e.js, bucket, "../testdata/models/gocoder")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past the negative TTL
	r, err = e.client.Do(ctx, job("after-push"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Error != nil {
		t.Fatalf("after the push: %v", r.Error)
	}
	want := greedy(t, m, precision.FP32, []int32{5, 6, 7, 8}, 8)
	if cut := slices.Index(want, 0); cut >= 0 {
		want = want[:cut]
	}
	if !slices.Equal(r.Tokens, want) {
		t.Errorf("tokens %v; want the CPU's greedy %v", r.Tokens, want)
	}
}

// TestOutputDTypeResults: a job asking for bf16 or f16 output gets the
// f32 job's output rounded to that type, in half the bytes.
func TestOutputDTypeResults(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.start("w", worker.Config{}, nil)
	ctx := context.Background()
	ref, err := e.client.Do(ctx, e.job("f32", 3, 7))
	if err != nil || ref.Error != nil {
		t.Fatalf("f32 job: %v %v", err, ref.Error)
	}
	want, err := ref.Output.Values()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dtype gearbox.DType
		round func(float32) float32
	}{{gearbox.BF16, precision.RoundBF16}, {gearbox.F16, precision.RoundFP16}} {
		j := e.job("out-"+string(c.dtype), 3, 7)
		j.OutputDType = c.dtype
		r, err := e.client.Do(ctx, j)
		if err != nil || r.Error != nil {
			t.Fatalf("%s job: %v %v", c.dtype, err, r.Error)
		}
		if r.Output.DType != c.dtype || len(r.Output.Data) != 2*len(want) {
			t.Fatalf("%s job: output %s of %d bytes; want %s of %d", c.dtype, r.Output.DType, len(r.Output.Data), c.dtype, 2*len(want))
		}
		got, err := r.Output.Values()
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != c.round(want[i]) {
				t.Fatalf("%s job: value %d = %v; want %v rounded: %v", c.dtype, i, got[i], want[i], c.round(want[i]))
			}
		}
	}
}
