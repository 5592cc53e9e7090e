package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"
)

// runCLI runs a gearbox command line in-process with the environment env
// and returns its exit status, stdout and stderr. Not for parallel tests:
// a command sets zerolog's global logger.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLICtx(context.Background(), env, args...)
}

// runCLIStdin is runCLI with stdin as the command's standard input.
func runCLIStdin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runWithStdin(context.Background(), args, nil, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func runCLICtx(ctx context.Context, env []string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, args, env, &out, &errb)
	return code, out.String(), errb.String()
}

// commandPaths lists every command of the tree, as argument lists.
func commandPaths() [][]string {
	var paths [][]string
	var walk func(*cobra.Command, []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, s := range c.Commands() {
			if s.Name() != "help" && s.Name() != "completion" {
				walk(s, append(slices.Clone(path), s.Name()))
			}
		}
	}
	walk(newRootCmd(&app{}), nil)
	return paths
}

// TestHelpHasNoSideEffects: every command prints its help for -h and
// --help, exits 0 and does nothing else: no connection to NATS, no
// embedded server, no metrics listener, no file written, even with a
// configuration no command could run with.
func TestHelpHasNoSideEffects(t *testing.T) {
	// One port for everything a command could reach or bind: a connection
	// is counted, and a bind fails.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	addr := l.Addr().String()
	dir := t.TempDir()
	env := []string{
		"GEARBOX_NATS_URL=nats://" + addr, "GEARBOX_EMBEDDED_LISTEN=" + addr, "GEARBOX_METRICS_ADDR=" + addr,
		"GEARBOX_DATA_DIR=" + filepath.Join(dir, "nats"), "GEARBOX_MODELS=" + filepath.Join(dir, "models"),
		"GEARBOX_DEVICE=cuda:99", "GEARBOX_LOG_LEVEL=nonsense", "GEARBOX_MAX_BATCH_ROWS=many",
	}
	paths := commandPaths()
	if len(paths) < 17 {
		t.Fatalf("found %d commands: %q; want every command of the tree", len(paths), paths)
	}
	for _, path := range paths {
		for _, h := range []string{"-h", "--help"} {
			args := append(slices.Clone(path), h)
			code, stdout, stderr := runCLI(t, env, args...)
			if code != 0 || !strings.Contains(stdout, "Usage:") || stderr != "" {
				t.Errorf("gearbox %s: exit status %d, stdout %q, stderr %q; want 0 and the help on stdout", strings.Join(args, " "), code, stdout, stderr)
			}
		}
	}
	// -h after arguments and other flags, too.
	for _, args := range [][]string{
		{"model", "push", "models/demo", "-h"},
		{"results", "demo", "--from-start", "-h"},
		{"submit", "--random", "5", "--wait", "-h"},
		{"policy", "set", "demo", "--max-error", "0.1", "--help"},
	} {
		if code, stdout, _ := runCLI(t, env, args...); code != 0 || !strings.Contains(stdout, "Usage:") {
			t.Errorf("gearbox %s: exit status %d; want 0 and the help", strings.Join(args, " "), code)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("help opened %d connections", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("help wrote %v in the data and models directories", entries)
	}
}

// TestUsageErrors: usage errors exit 2 with a message naming the command
// and pointing at its help; a bad environment is one too.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "gearbox: no command given"},
		{[]string{"frobnicate"}, nil, `gearbox: unknown command "frobnicate"`},
		{[]string{"model"}, nil, "gearbox model: missing command: want one of inspect, push, synth"},
		{[]string{"policy", "delete"}, nil, `gearbox policy: unknown command "delete": want one of get, set, watch`},
		{[]string{"bench", "gpu"}, nil, `gearbox bench: unknown command "gpu": want one of decode, e2e, kernels, lm`},
		{[]string{"bench", "decode", "--precisions", "bf16,fp16"}, nil, `gearbox bench decode: --precisions: "fp16": want bf16, fp8 or fp4`},
		{[]string{"bench", "decode", "--min-seconds", "inf"}, nil, "gearbox bench decode: --min-seconds +Inf: want a finite 0 or more"},
		{[]string{"bench", "decode", "--batches", "1,0"}, nil, `gearbox bench decode: --batches: "0" is not a positive integer`},
		{[]string{"bench", "decode", "--steps", "0"}, nil, "gearbox bench decode: --steps 0: want at least 1"},
		{[]string{"results"}, nil, "gearbox results: want one MODEL, got 0 argument(s)"},
		{[]string{"results", "a", "b"}, nil, "gearbox results: want one MODEL, got 2 argument(s)"},
		{[]string{"demo", "--jobs", "many"}, nil, `gearbox demo: invalid argument "many" for "--jobs"`},
		{[]string{"submit", "--nope"}, nil, "gearbox submit: unknown flag: --nope"},
		{[]string{"model", "synth", "--name", "x"}, nil, "gearbox model synth: --out and --name are required"},
		{[]string{"policy", "set", "demo", "--floor", "fp9"}, nil, `gearbox policy set: --floor "fp9": want one of`},
		{[]string{"worker"}, []string{"GEARBOX_MAX_BATCH_ROWS=many"}, `gearbox worker: configuration: env: parse error on field "MaxBatchRows"`},
		{[]string{"worker"}, []string{"GEARBOX_LOG_FORMAT=xml"}, `gearbox worker: GEARBOX_LOG_FORMAT "xml": want auto, json or console`},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(t, tt.env, tt.args...)
		if code != 2 || !strings.HasPrefix(stderr, tt.want) && !strings.Contains(stderr, "\n"+tt.want) || !strings.Contains(stderr, "--help' for usage.") {
			t.Errorf("gearbox %s: exit status %d, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
}

// TestFlagsAnywhere: flags go before, between or after the arguments, with
// one dash or two, as name=value or name value.
func TestFlagsAnywhere(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if code, stdout, stderr := runCLI(t, nil, "model", "synth", "-out", dir, "--name=m", "-dims=8,16,4"); code != 0 || !strings.Contains(stdout, "model m, ") {
		t.Fatalf("model synth: exit status %d: %s%s", code, stdout, stderr)
	}
	var outs []string
	for _, args := range [][]string{
		{"model", "inspect", "--error", "--rows", "8", dir},
		{"model", "inspect", dir, "--error", "--rows", "8"},
		{"model", "inspect", "--rows=8", dir, "-error"},
	} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "measured error (8 rows)") {
			t.Errorf("gearbox %s: exit status %d, %s%s; want the measured errors", strings.Join(args, " "), code, stdout, stderr)
		}
		outs = append(outs, stdout)
	}
	if outs[0] != outs[1] || outs[0] != outs[2] {
		t.Errorf("the same flags in another order printed something else:\n%s\n%s\n%s", outs[0], outs[1], outs[2])
	}
}

func TestGoStyleFlags(t *testing.T) {
	root := newRootCmd(&app{})
	tests := []struct{ in, want []string }{
		{[]string{"demo", "-jobs", "10", "-rate=5"}, []string{"demo", "--jobs", "10", "--rate=5"}},
		{[]string{"bench", "kernels", "-m", "1,16", "-iters", "50"}, []string{"bench", "kernels", "-m", "1,16", "--iters", "50"}},
		{[]string{"submit", "--wait", "-h", "-"}, []string{"submit", "--wait", "-h", "-"}},
		{[]string{"policy", "set", "m", "--max-error", "-1"}, []string{"policy", "set", "m", "--max-error", "-1"}},
		{[]string{"submit", "-nosuchflag"}, []string{"submit", "-nosuchflag"}},
		{[]string{"submit", "--", "-wait"}, []string{"submit", "--", "-wait"}},
	}
	for _, tt := range tests {
		if got := goStyleFlags(root, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("goStyleFlags(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestVersion(t *testing.T) {
	// A broken environment does not stop it.
	code, stdout, stderr := runCLI(t, []string{"GEARBOX_LOG_LEVEL=nonsense"}, "version")
	if code != 0 || !strings.HasPrefix(stdout, "gearbox ") || !strings.Contains(stdout, ", revision ") || !strings.Contains(stdout, ", go1.") {
		t.Errorf("version: exit status %d, %q %q; want gearbox VERSION, revision REV, goVERSION", code, stdout, stderr)
	}
}
