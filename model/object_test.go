package model

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox/internal/natstest"
)

// TestReadObjectStalled: a download that stops moving (the server gone
// after its first bytes) fails with ErrStalled within about twice
// ObjectStall, instead of waiting for the next chunk forever.
func TestReadObjectStalled(t *testing.T) {
	s := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := ObjectStore(ctx, js, Bucket, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "big/model.safetensors", make([]byte, 16<<20)); err != nil {
		t.Fatal(err)
	}
	objectStall = 300 * time.Millisecond
	var once sync.Once
	testHookProgress = func() { once.Do(s.Shutdown) }
	t.Cleanup(func() { objectStall, testHookProgress = ObjectStall, nil })

	start := time.Now()
	_, _, err = ReadObject(context.Background(), obs, "big/model.safetensors", -1)
	took := time.Since(start)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("ReadObject with the server gone after the first bytes: %v (after %v); want ErrStalled", err, took)
	}
	t.Logf("%v after %v", err, took)
}
