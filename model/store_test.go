package model_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/model"
)

// setupJetStream starts an in-process NATS server with JetStream and returns
// a JetStream context connected to it; both are shut down with the test.
func setupJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPushFetchList(t *testing.T) {
	js := setupJetStream(t)
	ctx := ctxFor(t)

	if names, err := model.List(ctx, js, ""); err != nil || len(names) != 0 {
		t.Errorf("List before any push = %v, %v; want none", names, err)
	}
	if _, err := model.Fetch(ctx, js, "", "demo"); !errors.Is(err, model.ErrNotFound) || !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("Fetch before any push: got error %v; want %v wrapping %v", err, model.ErrNotFound, jetstream.ErrBucketNotFound)
	}

	var pushed []*model.Model
	for i, c := range []model.SynthConfig{
		{Name: "mlp", Dims: []int{64, 256, 256, 10}, Seed: 1, DType: model.DTypeBF16},
		{Name: "tiny", Dims: []int{4, 2}, Seed: 2, Softmax: true},
	} {
		m, err := model.Synth(c)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "dir"+string(rune('a'+i)))

		if err := model.Save(m, dir); err != nil {
			t.Fatal(err)
		}
		p, err := model.Push(ctx, js, "", dir)
		if err != nil {
			t.Fatal(err)
		}
		if p.Digest != m.Digest {
			t.Errorf("pushed digest %s; want %s", p.Digest, m.Digest)
		}
		pushed = append(pushed, m)
	}

	for _, want := range pushed {
		got, err := model.Fetch(ctx, js, "", want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if d := sameModel(want, got); d != nil {
			t.Errorf("Fetch(%s) differs: %v", want.Name, d)
		}
		if got.Digest != want.Digest {
			t.Errorf("Fetch(%s) digest %s; want %s", want.Name, got.Digest, want.Digest)
		}
	}

	names, err := model.List(ctx, js, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mlp", "tiny"}; !slices.Equal(names, want) {
		t.Errorf("List = %v; want %v", names, want)
	}

	_, err = model.Fetch(ctx, js, "", "absent")
	if !errors.Is(err, model.ErrNotFound) || !errors.Is(err, jetstream.ErrObjectNotFound) || !strings.Contains(err.Error(), `"absent"`) {
		t.Errorf("Fetch(absent): got error %v; want %v wrapping %v", err, model.ErrNotFound, jetstream.ErrObjectNotFound)
	}
	if _, err := model.Fetch(ctx, js, "", "no/such.name"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("Fetch(invalid name): got error %v; want %v", err, model.ErrNotFound)
	}
}

func TestPushUpdate(t *testing.T) {
	js := setupJetStream(t)
	ctx := ctxFor(t)
	dir := t.TempDir()
	var last *model.Model
	for seed := range int64(2) {
		m, err := model.Synth(model.SynthConfig{Name: "m", Dims: []int{8, 4}, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if err := model.Save(m, dir); err != nil {
			t.Fatal(err)
		}
		if _, err := model.Push(ctx, js, "", dir); err != nil {
			t.Fatal(err)
		}
		last = m
	}
	got, err := model.Fetch(ctx, js, "", "m")
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != last.Digest {
		t.Errorf("Fetch after re-push: digest %s; want the latest %s", got.Digest, last.Digest)
	}
}

func TestPushRefusesInvalidModel(t *testing.T) {
	js := setupJetStream(t)
	ctx := ctxFor(t)
	dir := writeModel(t, t.TempDir(), demoManifest(), append(demoTensors(), tensor("stray", 1)))
	_, err := model.Push(ctx, js, "", dir)
	if !errors.Is(err, model.ErrTensorMismatch) {
		t.Fatalf("got error %v; want %v", err, model.ErrTensorMismatch)
	}
	if names, err := model.List(ctx, js, ""); err != nil || len(names) != 0 {
		t.Errorf("List after a refused push = %v, %v; want none", names, err)
	}
	if _, err := js.ObjectStore(ctx, model.Bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("a refused push created the bucket (err %v)", err)
	}
}

// TestFetchTorn puts a manifest and weights from two different pushes, as a
// reader racing a push could see them.
func TestFetchTorn(t *testing.T) {
	js := setupJetStream(t)
	ctx := ctxFor(t)
	a, _ := model.Synth(model.SynthConfig{Name: "m", Dims: []int{8, 4}, Seed: 1})
	b, _ := model.Synth(model.SynthConfig{Name: "m", Dims: []int{8, 4}, Seed: 2})
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	if err := model.Save(a, dirA); err != nil {
		t.Fatal(err)
	}
	if err := model.Save(b, dirB); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Push(ctx, js, "", dirA); err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, model.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	weightsB, _ := os.ReadFile(filepath.Join(dirB, model.WeightsFile))
	meta := jetstream.ObjectMeta{Name: "m/" + model.WeightsFile, Metadata: map[string]string{"gearbox-digest": b.Digest}}
	if _, err := obs.Put(ctx, meta, bytes.NewReader(weightsB)); err != nil {
		t.Fatal(err)
	}
	_, err = model.Fetch(ctx, js, "", "m")
	if !errors.Is(err, model.ErrInconsistent) {
		t.Errorf("got error %v; want %v", err, model.ErrInconsistent)
	}

	// Once the push completes, Fetch succeeds.
	if _, err := model.Push(ctx, js, "", dirB); err != nil {
		t.Fatal(err)
	}
	got, err := model.Fetch(ctx, js, "", "m")
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != b.Digest {
		t.Errorf("digest %s; want %s", got.Digest, b.Digest)
	}
}

// TestFetchValidates checks that objects put by other tools (with no digest
// metadata) are loaded and validated like files.
func TestFetchValidates(t *testing.T) {
	js := setupJetStream(t)
	ctx := ctxFor(t)
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: model.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	var weights bytes.Buffer
	if err := model.WriteSafetensors(&weights, demoTensors()); err != nil {
		t.Fatal(err)
	}
	put := func(name string, data []byte) {
		if _, err := obs.PutBytes(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	put("demo/model.safetensors", weights.Bytes())
	put("demo/model.json", []byte(`{"name":"demo","input_features":8,"layers":[{"op":"linear","weight":"l0.weight"}]}`))
	_, err = model.Fetch(ctx, js, "", "demo")
	if !errors.Is(err, model.ErrTensorMismatch) || !strings.Contains(err.Error(), "gearbox_models/demo/model.safetensors") {
		t.Errorf("got error %v; want %v naming gearbox_models/demo/model.safetensors", err, model.ErrTensorMismatch)
	}

	// A manifest whose name is not the one it is stored under.
	put("other/model.safetensors", weights.Bytes())
	mf, _ := os.ReadFile(filepath.Join(writeModel(t, t.TempDir(), demoManifest(), demoTensors()), model.ManifestFile))
	put("other/model.json", mf)
	_, err = model.Fetch(ctx, js, "", "other")
	if !errors.Is(err, model.ErrInvalidManifest) || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("got error %v; want %v", err, model.ErrInvalidManifest)
	}
}

// TestStoreBucket checks that a named bucket (another deployment's prefix)
// is used, and is separate from the default one.
func TestStoreBucket(t *testing.T) {
	js := setupJetStream(t)
	ctx := ctxFor(t)
	m, _ := model.Synth(model.SynthConfig{Name: "m", Dims: []int{4, 2}})
	dir := t.TempDir()
	if err := model.Save(m, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Push(ctx, js, "staging_models", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Fetch(ctx, js, "staging_models", "m"); err != nil {
		t.Error(err)
	}
	if names, err := model.List(ctx, js, "staging_models"); err != nil || !slices.Equal(names, []string{"m"}) {
		t.Errorf("List(staging_models) = %v, %v; want [m]", names, err)
	}
	_, err := model.Fetch(ctx, js, model.Bucket, "m")
	if !errors.Is(err, model.ErrNotFound) || !strings.Contains(err.Error(), model.Bucket) {
		t.Errorf("Fetch from the default bucket: got error %v; want %v naming %s", err, model.ErrNotFound, model.Bucket)
	}
}

// TestReadObjectOutlastsAPITimeout: an object takes as long to read as it
// takes, not the JetStream context's default API timeout, which nats.go's
// ObjectStore.Get otherwise applies to the whole read when the caller's
// context has no deadline (a 16 GB model failed to load that way).
func TestReadObjectOutlastsAPITimeout(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obs, err := model.ObjectStore(ctx, js, model.Bucket, true)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 32<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	if _, err := obs.PutBytes(ctx, "big/model.safetensors", data); err != nil {
		t.Fatal(err)
	}
	const apiTimeout = 10 * time.Millisecond
	short, err := jetstream.New(nc, jetstream.WithDefaultTimeout(apiTimeout))
	if err != nil {
		t.Fatal(err)
	}
	sobs, err := short.ObjectStore(ctx, model.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, info, err := model.ReadObject(context.Background(), sobs, "big/model.safetensors", -1)
	if err != nil {
		t.Fatalf("ReadObject: %v", err)
	}
	took := time.Since(start)
	if !bytes.Equal(got, data) || info.Size != uint64(len(data)) {
		t.Fatalf("ReadObject returned %d bytes (info %d), not the %d put", len(got), info.Size, len(data))
	}
	t.Logf("read %d MB in %v with a %v API timeout", len(data)>>20, took, apiTimeout)
	part, _, err := model.ReadObject(context.Background(), sobs, "big/model.safetensors", 1000)
	if err != nil || !bytes.Equal(part, data[:1000]) {
		t.Errorf("ReadObject with limit 1000: %d bytes, %v; want the first 1000", len(part), err)
	}
	if took > apiTimeout {
		// What the fix is for: the same read through Get alone fails.
		res, err := sobs.Get(context.Background(), "big/model.safetensors")
		if err == nil {
			_, err = io.ReadAll(res)
			res.Close()
		}
		if err == nil {
			t.Logf("ObjectStore.Get alone also read it (nats.go no longer bounds the read by the API timeout)")
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := model.ReadObject(cctx, sobs, "big/model.safetensors", -1); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadObject with a cancelled context: %v; want context.Canceled", err)
	}
}
