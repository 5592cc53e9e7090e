// Package embedded starts an in-process NATS server with JetStream, the
// default when no external NATS is configured, and the server tests use.
package embedded

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server.
type Config struct {
	// Dir holds JetStream's data (required).
	Dir string
	// Listen is host:port for clients; port -1 picks a free port, and ""
	// listens nowhere (in-process connections only).
	Listen string
	// MaxPayload is the largest message (default 8 MiB).
	MaxPayload int32
	// MonitorPort, when non-zero, serves the monitoring endpoint (/jsz,
	// used by KEDA) on it; -1 picks a free port.
	MonitorPort int
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("embedded nats: no data directory")
	}
	opts := &server.Options{
		ServerName: "gearbox-embedded",
		JetStream:  true,
		StoreDir:   cfg.Dir,
		MaxPayload: cfg.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen port %q: %w", port, err)
		}
		opts.Host, opts.Port = host, p
		if p > 0 { // fail fast, with a clear error, when the port is taken
			l, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return nil, fmt.Errorf("embedded nats: cannot listen on %s: %w", cfg.Listen, err)
			}
			l.Close()
		}
	}
	if cfg.MonitorPort != 0 {
		opts.HTTPHost, opts.HTTPPort = "127.0.0.1", cfg.MonitorPort
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 10s (is %s in use?)", cfg.Listen)
	}
	return s, nil
}
