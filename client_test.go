package gearbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/natstest"
)

// TestResultsLargest: a follower's pulls are bounded in bytes, and a result
// as large as the server takes still reaches it (a pull of fewer bytes than
// the message would never deliver it); several followers of 64 KiB results
// share one connection and each reads all of its own.
func TestResultsLargest(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const followers, each = 4, 300
	clients := make([]*gearbox.Client, followers)
	for i := range clients {
		c, err := gearbox.NewClient(nc, gearbox.WithPrefix(fmt.Sprintf("gbxtest%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Provision(ctx, gearbox.StreamsConfig{}); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	publish := func(c *gearbox.Client, r *gearbox.Result) {
		t.Helper()
		data, err := gearbox.Msgpack.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(c.Subjects().Results(r.Model))
		m.Header.Set(gearbox.HeaderContentType, gearbox.Msgpack.ContentType())
		m.Data = data
		if _, err := c.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish %d bytes: %v", len(data), err)
		}
	}

	// One result just under the server's largest message first.
	big := int(nc.MaxPayload())/4 - 1024
	publish(clients[0], &gearbox.Result{ID: "big", Model: "m", Output: ptr(gearbox.NewTensor(1, big, make([]float32, big)))})
	row := make([]float32, 16384) // 64 KiB
	for i, c := range clients {
		for j := range each {
			publish(c, &gearbox.Result{ID: fmt.Sprintf("%d-%d", i, j), Model: "m", Output: ptr(gearbox.NewTensor(1, len(row), row))})
		}
	}

	got := make(chan int, followers)
	for i, c := range clients {
		want := each
		if i == 0 {
			want++
		}
		go func() {
			n := 0
			for r, err := range c.Results(ctx, "m", true) {
				if err != nil {
					t.Errorf("follower %d: %v", i, err)
					break
				}
				if i == 0 && n == 0 && (r.ID != "big" || r.Output.Features() != big) {
					t.Errorf("follower 0's first result %s of %d features; want big, %d", r.ID, r.Output.Features(), big)
				}
				if n++; n == want {
					break
				}
			}
			got <- n
		}()
	}
	for range followers {
		if n := <-got; n < each {
			t.Errorf("a follower read %d results; want at least %d", n, each)
		}
	}
}

func ptr[T any](v T) *T { return &v }
