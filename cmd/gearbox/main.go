// Command gearbox is the Gearbox batch inference worker and its tools.
//
//	gearbox worker                 serve jobs (configured from the environment)
//	gearbox demo                   embedded NATS + workers + load, then a summary
//	gearbox submit                 publish jobs (JSON lines, or random inputs)
//	gearbox results                follow a model's results
//	gearbox model synth|push|inspect
//	gearbox policy get|set|watch
//	gearbox quality
//	gearbox bench kernels|e2e
//	gearbox version
//
// The command tree is github.com/spf13/cobra's (kubectl's and helm's), so
// every command takes -h without doing anything else, and flags go before
// or after the arguments. Go-style single-dash long flags (-jobs 10) are
// accepted too (goStyleFlags). The environment is read once, over the
// packages' defaults (defaultConfig), before a command runs; see the
// README's configuration table, which TestREADMEConfigTable holds to the
// code, and the README's commands, which TestREADMECommands runs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"

	_ "github.com/gearbox-inference/gearbox/kernels/cpu"  // the CPU backend
	_ "github.com/gearbox-inference/gearbox/kernels/cuda" // the CUDA backend (CPU fallback when unusable)
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args with the environment environ
// (KEY=value entries) and returns the exit status: 0, 1 when the command
// failed, 2 for a usage error (an unknown command or flag, wrong
// arguments, a bad configuration).
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	return runWithStdin(ctx, args, environ, os.Stdin, stdout, stderr)
}

// runWithStdin is run with stdin as the commands' standard input.
func runWithStdin(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{environ: environ, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(goStyleFlags(root, args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if ue := (usageError{}); errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	return 1
}

// app is what every command shares: the configuration and the logger,
// set up just before a command runs (never for -h).
type app struct {
	environ []string
	stderr  io.Writer
	cfg     config
	log     zerolog.Logger
}

// setup reads the configuration and builds the logger.
func (a *app) setup() error {
	cfg, err := loadConfig(a.environ)
	if err != nil {
		return usageError{err}
	}
	log, err := newLogger(&cfg, a.stderr)
	if err != nil {
		return usageError{err}
	}
	a.cfg, a.log = cfg, log
	// Backends opened through the registry log through zerolog's global
	// logger: make it this one, with its level and format.
	zlog.Logger = log
	return nil
}

// newLogger builds the process logger: JSON lines, or human console output
// when stderr is a terminal (GEARBOX_LOG_FORMAT=auto|json|console).
func newLogger(cfg *config, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(cfg.LogLevel))
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("GEARBOX_LOG_LEVEL: %w", err)
	}
	console := false
	switch cfg.LogFormat {
	case "auto", "":
		if f, ok := w.(*os.File); ok {
			console = isatty.IsTerminal(f.Fd())
		}
	case "console":
		console = true
	case "json":
	default:
		return zerolog.Logger{}, fmt.Errorf("GEARBOX_LOG_FORMAT %q: want auto, json or console", cfg.LogFormat)
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
