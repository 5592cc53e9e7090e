package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/logtest"
	"github.com/gearbox-inference/gearbox/internal/natstest"
)

// TestConnectLogsAsyncErrors: a NATS error the client reports
// asynchronously (here a slow consumer's dropped messages) reaches the
// structured log with its subscription's subject, not stderr.
func TestConnectLogsAsyncErrors(t *testing.T) {
	srv := natstest.Start(t)
	var out logtest.Buffer
	cfg := config{NATSURL: srv.ClientURL()}
	nc, stop, err := connect(context.Background(), &cfg, zerolog.New(&out), "conn-test", false)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	release := make(chan struct{})
	sub, err := nc.Subscribe("slow.sub", func(*nats.Msg) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(1, -1); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := nc.Publish("slow.sub", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), `"message":"nats error"`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if s := out.String(); !strings.Contains(s, `"message":"nats error"`) || !strings.Contains(s, "slow consumer") || !strings.Contains(s, `"subject":"slow.sub"`) {
		t.Fatalf("log after a slow consumer dropped messages:\n%s\nwant a warning \"nats error\" naming the slow consumer and its subject", s)
	}
}
