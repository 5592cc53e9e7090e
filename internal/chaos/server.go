package chaos

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ServerConfig describes one NATS server process (natsd).
type ServerConfig struct {
	// Name is the server's name, unique in a cluster.
	Name string
	// Dir holds the server's JetStream store and its log (required).
	Dir string
	// Port is the client port on 127.0.0.1 (0: a free one). It is kept
	// across restarts, so clients reconnect to the same URL.
	Port int
	// Cluster names the cluster ("" for a lone server); ClusterPort is
	// this server's route port and Routes the other servers' route ports.
	Cluster     string
	ClusterPort int
	Routes      []int
	// MaxPayload is the largest message the server takes (default 8 MiB,
	// as Gearbox's deployments set it).
	MaxPayload int
}

// Server is a NATS server process. Kill it with Kill (SIGKILL) and start it
// again, on the same store and ports, with Restart.
type Server struct {
	*Proc
	Name string
	// URL is the client URL, nats://127.0.0.1:<port>.
	URL  string
	addr string
}

// StartServer starts natsd (the binary at bin) as cfg says and waits until
// it accepts clients.
func StartServer(bin string, cfg ServerConfig) (*Server, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("chaos: server %s: no directory", cfg.Name)
	}
	if cfg.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		cfg.Port = p
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 8 << 20
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: server %s: %w", cfg.Name, err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(cfg.Port)
	args := []string{"-name", cfg.Name, "-listen", addr, "-store", filepath.Join(cfg.Dir, "store"),
		"-max-payload", strconv.Itoa(cfg.MaxPayload)}
	if cfg.Cluster != "" {
		var routes []string
		for _, p := range cfg.Routes {
			routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
		}
		args = append(args, "-cluster", cfg.Cluster, "-cluster-listen", "127.0.0.1:"+strconv.Itoa(cfg.ClusterPort),
			"-routes", strings.Join(routes, ","))
	}
	proc, err := StartProc(ProcConfig{Name: "nats server " + cfg.Name, Path: bin, Args: args, Log: filepath.Join(cfg.Dir, "log")})
	if err != nil {
		return nil, err
	}
	s := &Server{Proc: proc, Name: cfg.Name, URL: "nats://" + addr, addr: addr}
	if err := s.WaitReady(30 * time.Second); err != nil {
		proc.Stop(time.Second)
		return nil, err
	}
	return s, nil
}

// Restart starts a killed server again on the same store and ports and
// waits until it accepts clients.
func (s *Server) Restart() error {
	if err := s.Start(); err != nil {
		return err
	}
	return s.WaitReady(30 * time.Second)
}

// WaitReady waits until the server accepts TCP connections from clients
// (JetStream may still be recovering its streams then).
func (s *Server) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if s.PID() == 0 {
			return fmt.Errorf("chaos: server %s exited while starting:\n%s", s.Name, s.LogTail(20))
		}
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: server %s not accepting clients on %s after %v: %w\n%s", s.Name, s.addr, timeout, err, s.LogTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartCluster starts n servers named n0, n1, … in one cluster, each
// storing under dir/<name>, and waits until each accepts clients.
func StartCluster(bin, dir string, n int) ([]*Server, error) {
	clients, routes := make([]int, n), make([]int, n)
	for i := range n {
		var err error
		if clients[i], err = FreePort(); err != nil {
			return nil, err
		}
		if routes[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	var servers []*Server
	for i := range n {
		var others []int
		for j, p := range routes {
			if j != i {
				others = append(others, p)
			}
		}
		name := "n" + strconv.Itoa(i)
		s, err := StartServer(bin, ServerConfig{Name: name, Dir: filepath.Join(dir, name), Port: clients[i],
			Cluster: "gearbox-chaos", ClusterPort: routes[i], Routes: others})
		if err != nil {
			for _, s := range servers {
				s.Stop(time.Second)
			}
			return nil, err
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// URLs joins the servers' client URLs with commas, as GEARBOX_NATS_URL
// and nats.Connect take them.
func URLs(servers []*Server) string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.URL)
	}
	return strings.Join(urls, ",")
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("chaos: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
