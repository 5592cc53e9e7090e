package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/embedded"
	"github.com/gearbox-inference/gearbox/worker"
)

// cluster is what both runs share: an embedded server, the workers (each
// on its own connection, as separate processes would be), a producer's
// client, and a watch of the policy bucket that hands each model's policy
// changes to whoever tracks that model.
type cluster struct {
	srv    *server.Server
	client *gearbox.Client
	subj   gearbox.Subjects
	kv     jetstream.KeyValue // the policy bucket
	runErr chan error         // a worker's Run failed

	mu       sync.Mutex
	trackers map[string]func(*gearbox.PrecisionPolicy, time.Time) // by model

	closers []func()
}

// startCluster starts the server and cfg.Workers workers serving models.
// On error, what was started is stopped again.
func startCluster(ctx context.Context, cfg Config, models *worker.Models) (c *cluster, err error) {
	c = &cluster{runErr: make(chan error, cfg.Workers), trackers: map[string]func(*gearbox.PrecisionPolicy, time.Time){}}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "gearbox-demo-")
		if err != nil {
			return nil, err
		}
		c.onClose(func() { os.RemoveAll(d) })
		dir = d
	}
	srv, err := embedded.Start(embedded.Config{Dir: dir, Listen: cfg.Listen})
	if err != nil && cfg.Listen != "" {
		// Most likely a worker already listens there: take a free port.
		host, _, _ := net.SplitHostPort(cfg.Listen)
		cfg.Log.Warn().Err(err).Msg("embedded NATS: using a free port instead")
		cfg.Listen = net.JoinHostPort(host, "-1")
		srv, err = embedded.Start(embedded.Config{Dir: dir, Listen: cfg.Listen})
	}
	if err != nil {
		return nil, err
	}
	c.srv = srv
	c.onClose(func() { srv.Shutdown(); srv.WaitForShutdown() })
	cfg.Log.Info().Str("url", srv.ClientURL()).Msg("embedded NATS server started")

	subj := cfg.Worker.Subjects
	if subj.Prefix == "" {
		subj = gearbox.DefaultSubjects
	}
	hard, hardStop := context.WithCancel(context.Background())
	c.onClose(hardStop)
	var workers []*worker.Worker
	var wg sync.WaitGroup
	for i := range cfg.Workers {
		nc, err := c.connect(fmt.Sprintf("demo-worker-%d", i))
		if err != nil {
			return nil, err
		}
		wc := cfg.Worker
		wc.Subjects, wc.Provision = subj, true
		wc.Name = fmt.Sprintf("demo-w%d", i)
		w, err := worker.New(nc, cfg.Backend, models, wc)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
		wg.Go(func() {
			if err := w.Run(hard); err != nil && !errors.Is(err, context.Canceled) {
				c.runErr <- err
			}
		})
	}
	// Before their connections close.
	c.onClose(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, w := range workers {
			_ = w.Shutdown(sctx)
		}
		hardStop()
		wg.Wait()
	})

	pc, err := c.connect("demo-producer")
	if err != nil {
		return nil, err
	}
	if c.client, err = gearbox.NewClient(pc, gearbox.WithPrefix(subj.Prefix)); err != nil {
		return nil, err
	}
	if err := c.client.Provision(ctx, cfg.Worker.Streams); err != nil {
		return nil, err
	}
	c.subj = subj
	if c.kv, err = gearbox.PolicyStore(ctx, c.client.JetStream(), subj, 1, false); err != nil {
		return nil, err
	}
	watch, err := c.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, err
	}
	c.onClose(func() { _ = watch.Stop() })
	go func() {
		for e := range watch.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if p, err := gearbox.DecodePolicy(e.Value()); err == nil {
				c.policy(p, time.Now())
			}
		}
	}()
	return c, nil
}

// connect opens an in-process connection, closed with the cluster.
func (c *cluster) connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(c.srv), nats.Name(name))
	if err != nil {
		return nil, err
	}
	c.onClose(nc.Close)
	return nc, nil
}

// track sends the policy changes of model to fn from now on.
func (c *cluster) track(model string, fn func(*gearbox.PrecisionPolicy, time.Time)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trackers[model] = fn
}

func (c *cluster) policy(p *gearbox.PrecisionPolicy, at time.Time) {
	c.mu.Lock()
	fn := c.trackers[p.Model]
	c.mu.Unlock()
	if fn != nil {
		fn(p, at)
	}
}

// onClose registers fn to run at close, after those registered later.
func (c *cluster) onClose(fn func()) { c.closers = append(c.closers, fn) }

// close stops everything started, in reverse order.
func (c *cluster) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}
