package lm_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
)

func storeJS(t *testing.T) (jetstream.JetStream, context.Context) {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return js, ctx
}

// TestPushFetch: a checkpoint pushed to the object store, sharded or not,
// with its tokenizer, comes back as the same model (same digest, weights
// byte for byte); Names lists it and model.List does not (it is no tensor
// model); a second push of new weights replaces it.
func TestPushFetch(t *testing.T) {
	js, ctx := storeJS(t)
	gocoder := "../../testdata/models/gocoder"
	sharded := synth(t, "sharded", lm.SynthConfig{Config: tiny(lm.Qwen2), DType: model.DTypeBF16, Seed: 3, Shards: 3})
	for _, dir := range []string{gocoder, sharded} {
		want, err := lm.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		pushed, err := lm.Push(ctx, js, "", dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := lm.Fetch(ctx, js, "", pushed.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != want.Digest || got.Name != want.Name || got.Version != want.Version {
			t.Errorf("%s: fetched %s %s %.12s; want %s %s %.12s", dir, got.Name, got.Version, got.Digest, want.Name, want.Version, want.Digest)
		}
		if !slices.Equal(got.Tokenizer, want.Tokenizer) || !slices.Equal(got.Weights.Embed.Data, want.Weights.Embed.Data) {
			t.Errorf("%s: the fetched tokenizer or embedding differs from the directory's", dir)
		}
	}
	names, err := lm.Names(ctx, js, "")
	if err != nil || !slices.Equal(names, []string{"gocoder", "sharded"}) {
		t.Errorf("Names = %v, %v; want [gocoder sharded]", names, err)
	}
	if tensors, err := model.List(ctx, js, ""); err != nil || len(tensors) != 0 {
		t.Errorf("model.List = %v, %v; want no tensor models", tensors, err)
	}

	// A push of a checkpoint the bucket holds puts nothing again: the
	// objects are the first push's (a new put gets a new NUID).
	obs, err := js.ObjectStore(ctx, model.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	nuid := func(object string) string {
		t.Helper()
		info, err := obs.GetInfo(ctx, object)
		if err != nil {
			t.Fatal(err)
		}
		return info.NUID
	}
	first := nuid("gocoder/model.safetensors")
	if _, err := lm.Push(ctx, js, "", gocoder); err != nil {
		t.Fatal(err)
	}
	if again := nuid("gocoder/model.safetensors"); again != first {
		t.Errorf("a second push of the same checkpoint put its weights again (NUID %s, was %s)", again, first)
	}

	// A re-push of other weights under the same name replaces the model.
	shardBefore := nuid("sharded/config.json")
	again := filepath.Join(t.TempDir(), "sharded")
	if err := lm.Synth(again, lm.SynthConfig{Config: tiny(lm.Qwen2), DType: model.DTypeBF16, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	pushed, err := lm.Push(ctx, js, "", again)
	if err != nil {
		t.Fatal(err)
	}
	got, err := lm.Fetch(ctx, js, "", "sharded")
	if err != nil {
		t.Fatalf("after a re-push: %v", err)
	}
	if got.Digest != pushed.Digest {
		t.Errorf("after a re-push: digest %.12s, want %.12s", got.Digest, pushed.Digest)
	}
	if nuid("sharded/config.json") == shardBefore {
		t.Errorf("a push of other weights did not put config.json again")
	}
}

// TestFetchErrors: a missing model or bucket is model.ErrNotFound; a name
// held by a tensor model cannot be pushed as a language model, nor the
// reverse.
func TestFetchErrors(t *testing.T) {
	js, ctx := storeJS(t)
	if _, err := lm.Fetch(ctx, js, "", "nothing"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("no bucket: %v; want model.ErrNotFound", err)
	}
	dir := synth(t, "twin", lm.SynthConfig{Config: tiny(lm.Llama), Seed: 1})
	if _, err := lm.Push(ctx, js, "", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := lm.Fetch(ctx, js, "", "other"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("no such model: %v; want model.ErrNotFound", err)
	}
	tensor := filepath.Join(t.TempDir(), "twin")
	tm, err := model.Synth(model.SynthConfig{Name: "twin", Dims: []int{4, 2}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := model.Save(tm, tensor); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Push(ctx, js, "", tensor); err == nil || !strings.Contains(err.Error(), "holds a language model of that name") {
		t.Errorf("pushing a tensor model over a language model: %v", err)
	}
}
