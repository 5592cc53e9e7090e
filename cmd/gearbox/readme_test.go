package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/gearbox-inference/gearbox/kernels/cuda"
)

// asGearbox, set in a process's environment, makes this test binary run
// as the gearbox command (TestMain), so the README's commands run the code
// under test without a second build.
const asGearbox = "GEARBOX_TEST_RUN_AS_GEARBOX"

func TestMain(m *testing.M) {
	if os.Getenv(asGearbox) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

// readmeCommand says how TestREADMECommands runs one of the README's
// commands; a command without an entry in readmeCommands runs to its end
// and must exit 0.
type readmeCommand struct {
	// skip, when set, is why the command is not run.
	skip string
	// long commands are skipped with -short and under the race detector.
	long bool
	// needs is a program that must be on PATH; without it the command is
	// skipped (and logged), and instead, when set, runs in its place.
	needs   string
	instead func(t *testing.T, metricsPort string)
	// background commands (ending in &) are started and stopped with
	// SIGINT when the test ends; ready must then succeed.
	background bool
	// follow commands print until interrupted: they are stopped with
	// SIGINT once they printed lines lines.
	follow bool
	lines  func(ran map[string]bool) int
	// check, when set, checks a command's stdout.
	check func(t *testing.T, stdout string, ran map[string]bool)
}

const natsPub = `nats pub gearbox.jobs.demo -H Nats-Msg-Id:r1 -H Content-Type:application/json '{"id":"r1","model":"demo","input":{"shape":[1,64],"values":['"$(seq 64 | paste -sd, -)"']}}'`

// readmeCommands lists every README command that is not simply run to a
// zero exit status, keyed by its text (comments dropped, continuation
// lines joined). The test fails when an entry matches no README command,
// so the list cannot outlive the README.
var readmeCommands = map[string]readmeCommand{
	"go test ./...": {skip: "the test suite itself"},
	"go run ./cmd/gearbox demo": {long: true, check: func(t *testing.T, stdout string, _ map[string]bool) {
		for _, want := range []string{`(?m)^jobs answered +50000$`, `mostly backlog, not service time`,
			`(?m)^errors: 200 \(the load generator sent 200 invalid jobs on purpose\)$`,
			`language model gocoder`, `same as fp32`,
			// The walk: fp32 → tf32 → bf16 on KL evidence, held by fp8's.
			`(?m)^  \+[0-9.]+s +→ tf32 +by demo-w[0-9]+: +tf32 kl upper bound `, `(?m)^  \+[0-9.]+s +→ bf16 +by demo-w[0-9]+: +bf16 kl upper bound `,
			`(?m)^holds at bf16 \(margin\) after [0-9]+ auto jobs in [0-9.]+s: fp8 kl upper bound `} {
			if !regexp.MustCompile(want).MatchString(stdout) {
				t.Errorf("demo output does not match %s:\n%s", want, stdout)
			}
		}
	}},
	"GEARBOX_MODELS=models go run ./cmd/gearbox worker &":    {background: true},
	"until curl -sf localhost:9464/readyz; do sleep 1; done": {needs: "curl", instead: waitReady},
	"go run ./cmd/gearbox submit --random 5 --model demo --features 64 --wait": {check: func(t *testing.T, stdout string, _ map[string]bool) {
		if n := strings.Count(stdout, "\tdemo\t"); n != 5 || strings.Contains(stdout, "ERROR") {
			t.Errorf("submit printed %d results, want 5 without errors:\n%s", n, stdout)
		}
	}},
	natsPub: {needs: "nats"},
	`echo '{"id":"g1","model":"gocoder","prompt":"func main() {","max_tokens":32}' | go run ./cmd/gearbox submit --wait`: {check: func(t *testing.T, stdout string, _ map[string]bool) {
		if !regexp.MustCompile(`(?m)^g1\tgocoder\tbf16\t[0-9]+\+[0-9]+ tokens\t.*\t(length|stop) "`).MatchString(stdout) {
			t.Errorf("the gocoder job has no generated text:\n%s", stdout)
		}
	}},
	"go run ./cmd/gearbox generate --model testdata/models/gocoder --prompt 'func (s *Server) Close() error {' --max-tokens 48": {check: func(t *testing.T, stdout string, _ map[string]bool) {
		if len(strings.TrimSpace(stdout)) == 0 {
			t.Error("generate printed no text")
		}
	}},
	"echo 'package main' | go run ./cmd/gearbox tokenize --model testdata/models/gocoder": {check: func(t *testing.T, stdout string, _ map[string]bool) {
		if !regexp.MustCompile(`^[0-9]+( [0-9]+)*\n$`).MatchString(stdout) {
			t.Errorf("tokenize printed %q; want one line of token ids", stdout)
		}
	}},
	"go run ./cmd/gearbox results demo --from-start": {follow: true,
		lines: func(ran map[string]bool) int {
			if ran[natsPub] {
				return 6
			}
			return 5
		},
		check: func(t *testing.T, stdout string, ran map[string]bool) {
			if ran[natsPub] && !regexp.MustCompile(`(?m)^r1\tdemo\tfp32\tbatch `).MatchString(stdout) {
				t.Errorf("the nats pub job r1 has no successful result:\n%s", stdout)
			}
		}},
	"go run ./cmd/gearbox quality demo": {follow: true, lines: func(map[string]bool) int { return 1 }},
	"go run ./cmd/gearbox policy get demo": {check: func(t *testing.T, stdout string, _ map[string]bool) {
		if !regexp.MustCompile(`(?m)^model +demo`).MatchString(stdout) || !regexp.MustCompile(`(?m)^controller +`).MatchString(stdout) {
			t.Errorf("policy get printed no policy and controller view:\n%s", stdout)
		}
	}},
}

// waitReady does what the README's curl loop does, for a machine without
// curl: it waits until the worker's /readyz answers 200.
func waitReady(t *testing.T, metricsPort string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:" + metricsPort + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker is not ready after a minute: %v", err)
		}
	}
}

// readmeSubstitutions are the only changes made to the README's commands:
// the test binary stands in for "go run ./cmd/gearbox", free ports for the
// default ones (another process may hold those), and the repository's
// testdata for the relative path (the commands run in a scratch
// directory).
func readmeSubstitutions(metricsPort string) *strings.Replacer {
	testdata, err := filepath.Abs("../../testdata")
	if err != nil {
		panic(err)
	}
	return strings.NewReplacer("go run ./cmd/gearbox", "gearbox", "localhost:9464", "127.0.0.1:"+metricsPort,
		"testdata/", testdata+"/")
}

// readmeShell returns the commands of the README's ```sh blocks: comments
// dropped, continuation lines joined.
func readmeShell(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in, cont := false, ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
			continue
		case strings.HasPrefix(line, "```"):
			in = false
			continue
		case !in:
			continue
		}
		if i := strings.Index(line, "  # "); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, `\`) {
			cont += strings.TrimSuffix(line, `\`)
			continue
		}
		if line = cont + line; line != "" {
			cmds = append(cmds, line)
		}
		cont = ""
	}
	if len(cmds) == 0 {
		t.Fatal("no commands in the README's sh blocks")
	}
	return cmds
}

// freePort returns a TCP port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestREADMECommands runs the README's shell commands, in order, as a
// reader pasting them would, in an empty directory, against the embedded
// server the README's worker starts. Changes to the commands: see
// readmeSubstitutions.
func TestREADMECommands(t *testing.T) {
	cmds := readmeShell(t)
	for key := range readmeCommands {
		if !slices.Contains(cmds, key) {
			t.Errorf("readmeCommands has %q, which is no longer a README command: update the list", key)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	work := filepath.Join(dir, "work")
	for _, d := range []string{bin, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(self, filepath.Join(bin, "gearbox")); err != nil {
		t.Fatal(err)
	}
	natsPort, metricsPort := freePort(t), freePort(t)
	environ := []string{asGearbox + "=1",
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"GEARBOX_EMBEDDED_LISTEN=127.0.0.1:" + natsPort, "GEARBOX_METRICS_ADDR=127.0.0.1:" + metricsPort,
		"GEARBOX_DATA_DIR=" + filepath.Join(dir, "nats"), "GEARBOX_DEVICE=cpu", "GEARBOX_LOG_FORMAT=json",
		"NATS_URL=nats://127.0.0.1:" + natsPort,
	}
	sub := readmeSubstitutions(metricsPort)
	ran := map[string]bool{}
	for _, c := range cmds {
		spec := readmeCommands[c]
		switch {
		case spec.skip != "":
			t.Logf("skipped %q: %s", c, spec.skip)
			continue
		case spec.long && (testing.Short() || raceEnabled):
			t.Logf("skipped %q: long, and this is -short or -race", c)
			continue
		case spec.needs != "":
			if _, err := exec.LookPath(spec.needs); err != nil {
				t.Logf("skipped %q: %s is not on PATH", c, spec.needs)
				if spec.instead != nil {
					spec.instead(t, metricsPort)
				}
				continue
			}
		}
		line := sub.Replace(c)
		switch {
		case spec.background:
			p := startShell(t, work, environ, strings.TrimSuffix(line, "&"))
			t.Cleanup(func() {
				if err := p.stop(); err != nil {
					t.Errorf("%q: %v\n%s", c, err, p.output())
				}
			})
		case spec.follow:
			p := startShell(t, work, environ, line)
			want := spec.lines(ran)
			if !p.waitLines(want, time.Minute) {
				t.Errorf("%q printed %d lines in a minute, want %d:\n%s", c, p.lineCount(), want, p.output())
			}
			if err := p.stop(); err != nil {
				t.Errorf("%q: %v\n%s", c, err, p.output())
			}
			if spec.check != nil {
				spec.check(t, p.stdout(), ran)
			}
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			cmd := shell(ctx, work, environ, line)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			cancel()
			if err != nil {
				t.Fatalf("%q: %v\nstdout:\n%s\nstderr:\n%s", c, err, stdout.String(), stderr.String())
			}
			if spec.check != nil {
				spec.check(t, stdout.String(), ran)
			}
		}
		ran[c] = true
	}
	// The worker the README started exports its build.
	if ran["GEARBOX_MODELS=models go run ./cmd/gearbox worker &"] {
		resp, err := http.Get("http://127.0.0.1:" + metricsPort + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`(?m)^gearbox_build_info\{goversion="go[0-9.]+",revision="[^"]+",version="[^"]+"\} 1$`)
		if !want.Match(body) {
			t.Errorf("the worker's /metrics has no gearbox_build_info:\n%s", body)
		}
	}
}

// shell is sh -c line in dir with environ, in its own process group.
func shell(ctx context.Context, dir string, environ []string, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir, cmd.Env = dir, environ
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// proc is a command running in the background.
type proc struct {
	cmd  *exec.Cmd
	done chan error

	mu     sync.Mutex
	out    bytes.Buffer // stdout
	errOut bytes.Buffer
	lines  int
	grew   chan struct{} // signalled on each stdout line
}

func startShell(t *testing.T, dir string, environ []string, line string) *proc {
	t.Helper()
	p := &proc{cmd: shell(context.Background(), dir, environ, line), done: make(chan error, 1), grew: make(chan struct{}, 1)}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.errOut.Write(b)
	})
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.Write(sc.Bytes())
			p.out.WriteByte('\n')
			p.lines++
			p.mu.Unlock()
			select {
			case p.grew <- struct{}{}:
			default:
			}
		}
		p.done <- p.cmd.Wait()
	}()
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *proc) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lines
}

func (p *proc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "stdout:\n" + p.out.String() + "stderr:\n" + p.errOut.String()
}

// waitLines waits until the command printed n lines, or for timeout.
func (p *proc) waitLines(n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for p.lineCount() < n {
		select {
		case <-p.grew:
		case <-deadline:
			return false
		}
	}
	return true
}

// stop interrupts the command, as Ctrl-C would, and waits for it: it must
// exit 0 within 30 s (then it is killed). The signal goes to the shell's
// children, which handle it (the shell itself would die of it and hide
// their exit status), or to the shell when it has exec'd its command.
func (p *proc) stop() error {
	targets := children(p.cmd.Process.Pid)
	if len(targets) == 0 {
		targets = []int{p.cmd.Process.Pid}
	}
	for _, pid := range targets {
		_ = syscall.Kill(pid, syscall.SIGINT)
	}
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("after SIGINT: %w", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("still running 30 s after SIGINT")
	}
}

// children lists the processes whose parent is pid (from /proc).
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		var child, ppid int
		var state string
		if _, err := fmt.Sscanf(string(b), "%d", &child); err != nil {
			continue
		}
		if n, _ := fmt.Sscanf(string(b[i+1:]), " %s %d", &state, &ppid); n == 2 && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// TestREADMEConfigTable: the README's configuration table and the config
// struct name the same variables, and each default in the table is the
// code's: a literal default (`256`) must parse to the value defaultConfig
// holds; a described one ("4 × max batch rows", empty) stands for a zero
// value there, which the packages derive or leave unset.
func TestREADMEConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `(GEARBOX_[A-Z0-9_]+)` \\|([^|]*)\\|")
	readme := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		if _, dup := readme[m[1]]; dup {
			t.Errorf("README lists %s twice", m[1])
		}
		readme[m[1]] = strings.TrimSpace(m[2])
	}
	// Read elsewhere than config: the CUDA backend's own variables.
	elsewhere := map[string]bool{cuda.EnvLibDir: true, cuda.EnvCacheDir: true, cuda.EnvBatchInvariant: true, cuda.EnvInFlight: true, cuda.EnvPDL: true, cuda.EnvPrefillAttention: true}
	for name := range elsewhere {
		if _, ok := readme[name]; !ok {
			t.Errorf("README's configuration table lacks %s", name)
		}
	}
	def := defaultConfig()
	dv := reflect.ValueOf(def)
	typ := dv.Type()
	literal := regexp.MustCompile("^`([^`]*)`$")
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("env")
		if name == "" {
			t.Errorf("config.%s has no env tag", f.Name)
			continue
		}
		if d := f.Tag.Get("envDefault"); d != "" {
			t.Errorf("config.%s has envDefault %q: take its default from its package in defaultConfig", f.Name, d)
		}
		cell, ok := readme[name]
		if !ok {
			t.Errorf("README's configuration table lacks %s", name)
			continue
		}
		delete(readme, name)
		code := dv.Field(i)
		m := literal.FindStringSubmatch(cell)
		if m == nil {
			if !code.IsZero() {
				t.Errorf("%s: README's default is %q, the code's %v: write it as `%v`", name, cell, code, code)
			}
			continue
		}
		var got config
		if err := env.ParseWithOptions(&got, env.Options{Environment: map[string]string{name: m[1]}}); err != nil {
			t.Errorf("%s: README's default %s does not parse: %v", name, cell, err)
			continue
		}
		if g := reflect.ValueOf(got).Field(i); !reflect.DeepEqual(g.Interface(), code.Interface()) {
			t.Errorf("%s: README's default is %s, the code's %v", name, cell, code)
		}
	}
	for name := range readme {
		if !elsewhere[name] {
			t.Errorf("README's configuration table has %s, which nothing reads", name)
		}
	}
}

// TestDemoJobCountDocumented: the README and the Taskfile state the demo's
// job count as the demo's --jobs default is.
func TestDemoJobCountDocumented(t *testing.T) {
	f := newDemoCmd(&app{}).Flags().Lookup("jobs")
	n, err := strconv.Atoi(f.DefValue)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d,%03d real jobs", n/1000, n%1000)
	for _, file := range []string{"../../README.md", "../../Taskfile.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not say %q, the demo's default", file, want)
		}
		if m := regexp.MustCompile(`[0-9]+,[0-9]{3} real jobs`).FindAllString(string(b), -1); len(m) != strings.Count(string(b), want) {
			t.Errorf("%s states other job counts than %q: %q", file, want, m)
		}
	}
}
