package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcConfig describes a process to run.
type ProcConfig struct {
	// Name names the process in errors.
	Name string
	// Path and Args are the program and its arguments.
	Path string
	Args []string
	// Env is added to the test's own environment.
	Env []string
	// Log receives stdout and stderr of every incarnation, appended
	// (required).
	Log string
	// Supervise starts the process again RestartDelay after it exits, for
	// whatever reason, until Stop: what an orchestrator does with a pod.
	Supervise bool
	// RestartDelay is the pause before a supervised restart (default
	// 200 ms).
	RestartDelay time.Duration
}

// Exit is how one incarnation of a process ended.
type Exit struct {
	PID    int
	At     time.Time
	Status string // as os.ProcessState says it: "signal: killed", "exit status 1"
}

// Proc is a process, started again when it exits if it is supervised. Its
// methods are safe for concurrent use.
type Proc struct {
	cfg ProcConfig

	mu      sync.Mutex
	cmd     *exec.Cmd     // the current incarnation; nil before the first start
	exited  chan struct{} // closed when the current incarnation has exited
	exits   []Exit
	stopped bool
}

// StartProc starts the process described by cfg.
func StartProc(cfg ProcConfig) (*Proc, error) {
	if cfg.Log == "" {
		return nil, fmt.Errorf("chaos: process %s: no log file", cfg.Name)
	}
	if cfg.RestartDelay == 0 {
		cfg.RestartDelay = 200 * time.Millisecond
	}
	p := &Proc{cfg: cfg}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.spawn(); err != nil {
		return nil, err
	}
	return p, nil
}

// spawn starts one incarnation; p.mu is held.
func (p *Proc) spawn() error {
	log, err := os.OpenFile(p.cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: process %s: %w", p.cfg.Name, err)
	}
	cmd := exec.Command(p.cfg.Path, p.cfg.Args...)
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("chaos: start %s: %w", p.cfg.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		log.Close()
		status := "exit status 0"
		if err != nil {
			status = err.Error()
		}
		p.mu.Lock()
		p.exits = append(p.exits, Exit{PID: cmd.Process.Pid, At: time.Now(), Status: status})
		close(exited)
		restart := p.cfg.Supervise && !p.stopped
		p.mu.Unlock()
		if restart {
			go p.restart()
		}
	}()
	return nil
}

// restart starts a supervised process again after its delay, retrying
// until it starts or is stopped.
func (p *Proc) restart() {
	for {
		time.Sleep(p.cfg.RestartDelay)
		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			return
		}
		err := p.spawn()
		p.mu.Unlock()
		if err == nil {
			return
		}
	}
}

// Start starts an unsupervised process again once it has exited (a
// supervised one restarts by itself).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
	default:
		return fmt.Errorf("chaos: %s is still running (pid %d)", p.cfg.Name, p.cmd.Process.Pid)
	}
	p.stopped = false
	return p.spawn()
}

// Name is the process's name, as its config gave it.
func (p *Proc) Name() string { return p.cfg.Name }

// PID is the current incarnation's process id, or 0 while none runs.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// ErrNotRunning is returned by Kill when no incarnation is running (a
// supervised process between two).
var ErrNotRunning = errors.New("chaos: process not running")

// Kill sends SIGKILL to the current incarnation and waits until it has
// exited. A supervised process then starts again after its delay.
func (p *Proc) Kill() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return fmt.Errorf("%w: %s", ErrNotRunning, p.cfg.Name)
	default:
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: kill %s: %w", p.cfg.Name, err)
	}
	<-exited
	return nil
}

// Dump ends supervision and sends SIGQUIT: a Go program writes every
// goroutine's stack to its log and exits. It waits for the exit (up to
// 10 s, then SIGKILL). For a drill that failed: where was it stuck?
func (p *Proc) Dump() { p.end(syscall.SIGQUIT, 10*time.Second) }

// Stop ends supervision and stops the process: SIGTERM, then SIGKILL if it
// has not exited within grace. It reports whether it exited on SIGTERM
// alone.
func (p *Proc) Stop(grace time.Duration) bool { return p.end(syscall.SIGTERM, grace) }

// end ends supervision, sends sig and waits for the exit, sending SIGKILL
// after grace; it reports whether sig alone ended the process.
func (p *Proc) end(sig os.Signal, grace time.Duration) bool {
	p.mu.Lock()
	p.stopped = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
		return false
	}
}

// Exits lists how each incarnation so far ended.
func (p *Proc) Exits() []Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exit(nil), p.exits...)
}

// LogTail is the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	data, err := os.ReadFile(p.cfg.Log)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// PeakRSS is the current incarnation's peak resident set size in bytes
// (VmHWM in /proc/<pid>/status; Linux only).
func (p *Proc) PeakRSS() (int64, error) {
	pid := p.PID()
	if pid == 0 {
		return 0, fmt.Errorf("chaos: %s is not running", p.cfg.Name)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("chaos: peak RSS of %s: %w", p.cfg.Name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("chaos: peak RSS of %s: %q: %w", p.cfg.Name, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("chaos: peak RSS of %s: no VmHWM in /proc/%d/status", p.cfg.Name, pid)
}

// Goroutines returns the goroutine stacks in a Go program's crash output
// (SIGQUIT, a fatal error) whose frames mention substr.
func Goroutines(output, substr string) string {
	var keep []string
	for _, g := range strings.Split(output, "\n\ngoroutine ") {
		if strings.Contains(g, substr) {
			keep = append(keep, "goroutine "+strings.TrimPrefix(g, "goroutine "))
		}
	}
	return strings.Join(keep, "\n\n")
}
