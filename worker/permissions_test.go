package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// permErrors collects a connection's asynchronous errors (a permissions
// violation arrives as one).
type permErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *permErrors) handler(_ *nats.Conn, sub *nats.Subscription, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, err.Error())
}

func (p *permErrors) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// TestLeastPrivilege runs a worker (with sampled quality checks and the
// controller writing policy changes), a producer and a reader under exactly
// the users of deployments/nats/permissions.conf against a real server:
// everything works without one permission violation, and what the file
// forbids is refused — a producer publishing a result, anyone purging the
// job stream.
func TestLeastPrivilege(t *testing.T) {
	for _, u := range []string{"ADMIN", "WORKER", "PRODUCER", "READER"} {
		t.Setenv("GEARBOX_"+u+"_PASSWORD", "pw-"+strings.ToLower(u))
	}
	opts, err := server.ProcessConfigFile("../deployments/nats/permissions.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(srv.Shutdown)
	as := func(user string, errs *permErrors) *nats.Conn {
		o := []nats.Option{nats.UserInfo("gearbox-"+user, "pw-"+user), nats.MaxReconnects(-1)}
		if errs != nil {
			o = append(o, nats.ErrorHandler(errs.handler))
		}
		return mustConnect(t, srv.ClientURL(), o...)
	}
	ctx := context.Background()
	streams := gearbox.StreamsConfig{}
	admin, err := gearbox.NewClient(as("admin", nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Provision(ctx, streams); err != nil {
		t.Fatal(err)
	}

	e := setup(t, streams) // the model and backend (its own server is unused)
	var workerErrs, producerErrs, readerErrs permErrors
	wnc := as("worker", &workerErrs)
	w, err := worker.New(wnc, e.backend, e.models, worker.Config{
		Name: "least", Streams: streams,
		Quality: quality.Config{Sample: 1, Rows: 4, Control: true,
			Rules: quality.Rules{MinSamples: 2, Window: 4, Margin: 0.9, Cooldown: time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })

	producer, err := gearbox.NewClient(as("producer", &producerErrs))
	if err != nil {
		t.Fatal(err)
	}
	const jobs = 60
	for i := range jobs {
		j := e.job(fmt.Sprintf("p%d", i), 2, uint64(i))
		if i == 0 {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			r, err := producer.Do(dctx, j) // a reply to the producer's inbox
			cancel()
			if err != nil || r.Error != nil {
				t.Fatalf("Do: %v %v", err, r)
			}
			continue
		}
		if _, err := producer.Submit(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	reader, err := gearbox.NewClient(as("reader", &readerErrs))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	n := 0
	for r, err := range reader.Results(rctx, "*", true) {
		if err != nil {
			t.Fatalf("results: %v", err)
		}
		if r.Error != nil {
			t.Errorf("%s: %v", r.ID, r.Error)
		}
		if n++; n == jobs {
			break
		}
	}
	// The controller wrote at least one policy change and announced it.
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		kv, err := admin.JetStream().KeyValue(ctx, "gearbox_policy")
		if err != nil {
			return err
		}
		if _, err := kv.Get(ctx, "mlp"); err != nil {
			return fmt.Errorf("no policy written: %v (worker errors: %q)", err, workerErrs.list())
		}
		return nil
	})

	// What the file forbids is refused.
	pnc := producer.JetStream().Conn()
	if _, err := pnc.Request("$JS.API.STREAM.PURGE.GEARBOX_JOBS", nil, 2*time.Second); err == nil {
		t.Error("the producer purged the job stream")
	}
	if _, err := wnc.Request("$JS.API.STREAM.PURGE.GEARBOX_JOBS", nil, 2*time.Second); err == nil {
		t.Error("the worker purged the job stream")
	}
	if err := pnc.Publish("gearbox.results.mlp", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, e := range producerErrs.list() {
			if strings.Contains(e, "gearbox.results.mlp") {
				return nil
			}
		}
		return errors.New("no permissions violation for a producer publishing a result")
	})
	// Every other call was allowed.
	for who, errs := range map[string]*permErrors{"worker": &workerErrs, "producer": &producerErrs, "reader": &readerErrs} {
		for _, e := range errs.list() {
			if !strings.Contains(e, "gearbox.results.mlp") && !strings.Contains(e, "$JS.API.STREAM.PURGE") {
				t.Errorf("%s: %s", who, e)
			}
		}
	}
}

func mustConnect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
