// Command natsd runs one NATS server with JetStream as a process of its own,
// for the failure drills of package chaos: a process can be killed with
// SIGKILL and started again on the same store and ports, as a real
// nats-server would be. It is the nats-server library Gearbox already
// depends on, behind a few flags; it is not meant for production (use the
// nats-server release there).
//
//	natsd -name n0 -listen 127.0.0.1:4222 -store /tmp/n0 \
//	      [-cluster gearbox -cluster-listen 127.0.0.1:6222 -routes nats://127.0.0.1:6223,nats://127.0.0.1:6224]
//
// It logs to stderr, stops gracefully on SIGINT or SIGTERM, and prints
// "ready" on stdout once it accepts clients.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	name := fs.String("name", "natsd", "server name (unique in a cluster)")
	listen := fs.String("listen", "127.0.0.1:4222", "client host:port")
	store := fs.String("store", "", "JetStream store directory (required)")
	maxPayload := fs.Int("max-payload", 8<<20, "largest message in bytes")
	cluster := fs.String("cluster", "", "cluster name (empty: a single server)")
	clusterListen := fs.String("cluster-listen", "", "route host:port of this server")
	routes := fs.String("routes", "", "comma-separated route URLs of the other servers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *store == "" {
		return fmt.Errorf("-store is required")
	}
	host, port, err := hostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	opts := &server.Options{
		ServerName: *name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   *store,
		MaxPayload: int32(*maxPayload),
		NoSigs:     true,
		Logtime:    true,
	}
	if *cluster != "" {
		ch, cp, err := hostPort(*clusterListen)
		if err != nil {
			return fmt.Errorf("-cluster-listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: *cluster, Host: ch, Port: cp}
		if *routes != "" {
			opts.Routes = server.RoutesFromStr(*routes)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	s.ConfigureLogger()
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("not ready after 30s on %s", *listen)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

func hostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, n, nil
}
