package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/embedded"
	"github.com/gearbox-inference/gearbox/internal/natsconn"
)

// connect connects to GEARBOX_NATS_URL or, when it is empty and embed is
// set, starts the embedded server and connects in-process. A long-lived
// process (embed set: the worker) connects in the background when the
// server is not up yet, so it can start before NATS and report not-ready
// meanwhile; the tools fail fast. The returned stop drains the connection
// and stops the server.
func connect(ctx context.Context, cfg *config, log zerolog.Logger, name string, embed bool) (*nats.Conn, func(), error) {
	conns, stop, err := connectN(ctx, cfg, log, name, embed, 1)
	if err != nil {
		return nil, nil, err
	}
	return conns[0], stop, nil
}

// connectN is connect with n connections to the same server: a worker
// process gives each of its workers one (see docs/architecture.md). The
// returned stop drains them all, then stops the embedded server.
func connectN(ctx context.Context, cfg *config, log zerolog.Logger, name string, embed bool, n int) ([]*nats.Conn, func(), error) {
	var conns []*nats.Conn
	var closed []chan struct{}
	var srv *server.Server
	stop := func() {
		for _, c := range conns {
			_ = c.Drain()
		}
		for _, c := range closed {
			waitClosed(c)
		}
		if srv != nil {
			shutdown(srv)
		}
	}
	nc := cfg.nats()
	if nc.URL == "" && !embed {
		cfg.NATSURL = "nats://" + cfg.EmbeddedListen
		return connectN(ctx, cfg, log, name, false, n)
	}
	if nc.URL == "" {
		dir := cfg.DataDir
		if dir == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				base = os.TempDir()
			}
			dir = filepath.Join(base, "gearbox", "nats")
		}
		var err error
		if srv, err = embedded.Start(embedded.Config{Dir: dir, Listen: cfg.EmbeddedListen}); err != nil {
			return nil, nil, err
		}
		log.Info().Str("listen", cfg.EmbeddedListen).Str("data_dir", dir).Msg("embedded NATS server started")
	}
	for range n {
		c := make(chan struct{})
		opts := []nats.Option{
			nats.Name(name),
			nats.ClosedHandler(func(*nats.Conn) { close(c) }),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(500 * time.Millisecond),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn().Err(err).Msg("nats disconnected")
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) { log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats connected") }),
			// Asynchronous errors (a slow consumer's dropped messages, a
			// permissions violation) in the log rather than on stderr.
			nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
				e := log.Warn().Err(err)
				if sub != nil {
					e = e.Str("subject", sub.Subject)
				}
				e.Msg("nats error")
			}),
		}
		var conn *nats.Conn
		var err error
		if srv != nil {
			conn, err = nats.Connect("", append(opts, nats.InProcessServer(srv))...)
		} else {
			if embed {
				opts = append(opts, natsconn.Retrying()...)
			}
			conn, err = nc.Connect(opts...)
			if err == nil && !conn.IsConnected() && len(conns) == 0 {
				log.Warn().Str("url", natsconn.Redact(nc.URL)).Msg("NATS is not reachable yet; connecting in the background")
			}
		}
		if err != nil {
			stop()
			return nil, nil, err
		}
		conns, closed = append(conns, conn), append(closed, c)
	}
	return conns, stop, nil
}

// waitClosed waits (a bounded time) for a drained connection to close.
func waitClosed(closed <-chan struct{}) {
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
	}
}

func shutdown(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}
