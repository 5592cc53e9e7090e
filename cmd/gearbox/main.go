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
//
// See README.md for the configuration table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"

	_ "github.com/gearbox-inference/gearbox/kernels/cpu"  // the CPU backend
	_ "github.com/gearbox-inference/gearbox/kernels/cuda" // the CUDA backend (CPU fallback when unusable)
)

const usage = `gearbox: batch inference on NATS JetStream

usage:
  gearbox worker                         serve jobs (configured from GEARBOX_* variables)
  gearbox demo [flags]                   embedded NATS, in-process workers, real load, a summary
  gearbox submit [flags] [FILE]          publish jobs: JSON lines from FILE or stdin, or --random N
  gearbox results [flags] MODEL          follow a model's results ("*" for all)
  gearbox model synth|push|inspect ...   make, upload and examine models
  gearbox policy get|set|watch ...       read, pin or follow a model's precision policy
  gearbox quality [flags] [MODEL]        follow quality reports as a live table
  gearbox bench kernels|e2e [flags]      GPU kernel and end-to-end benchmarks

Run "gearbox COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cfg, err := env.ParseAs[config]()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gearbox: configuration:", err)
		os.Exit(2)
	}
	log, err := newLogger(&cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gearbox:", err)
		os.Exit(2)
	}
	// Backends opened through the registry log through zerolog's global
	// logger: make it this one, with its level and format.
	zlog.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "worker":
		err = runWorker(ctx, &cfg, log, args)
	case "demo":
		err = runDemo(ctx, &cfg, log, args)
	case "submit":
		err = runSubmit(ctx, &cfg, log, args)
	case "results":
		err = runResults(ctx, &cfg, log, args)
	case "model":
		err = runModel(ctx, &cfg, log, args)
	case "bench":
		err = runBench(ctx, &cfg, log, args)
	case "policy":
		err = runPolicy(ctx, &cfg, log, args)
	case "quality":
		err = runQuality(ctx, &cfg, log, args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "gearbox: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "gearbox %s: %v\n", cmd, err)
		os.Exit(1)
	}
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
