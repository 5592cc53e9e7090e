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
	closed := make(chan struct{})
	opts := []nats.Option{
		nats.Name(name),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats connected") }),
	}
	nc := cfg.nats()
	if nc.URL != "" {
		if embed {
			opts = append(opts, natsconn.Retrying()...)
		}
		conn, err := nc.Connect(opts...)
		if err != nil {
			return nil, nil, err
		}
		if !conn.IsConnected() {
			log.Warn().Str("url", natsconn.Redact(nc.URL)).Msg("NATS is not reachable yet; connecting in the background")
		}
		return conn, func() { _ = conn.Drain(); waitClosed(closed) }, nil
	}
	if !embed {
		cfg.NATSURL = "nats://" + cfg.EmbeddedListen
		return connect(ctx, cfg, log, name, false)
	}
	dir := cfg.DataDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "gearbox", "nats")
	}
	srv, err := embedded.Start(embedded.Config{Dir: dir, Listen: cfg.EmbeddedListen})
	if err != nil {
		return nil, nil, err
	}
	log.Info().Str("listen", cfg.EmbeddedListen).Str("data_dir", dir).Msg("embedded NATS server started")
	conn, err := nats.Connect("", append(opts, nats.InProcessServer(srv))...)
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	return conn, func() {
		_ = conn.Drain()
		waitClosed(closed)
		shutdown(srv)
	}, nil
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
