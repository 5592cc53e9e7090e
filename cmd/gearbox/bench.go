package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"
)

const benchUsage = `usage:
  gearbox bench kernels [flags]   linear-layer timings per precision on the GPU (and PyTorch's)
  gearbox bench e2e [flags]       the worker with the embedded server vs the bare backend loop`

// runBench dispatches the bench subcommands.
func runBench(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand\n%s", benchUsage)
	}
	switch args[0] {
	case "kernels":
		return benchKernels(ctx, cfg, log, args[1:])
	case "e2e":
		return benchE2E(ctx, cfg, log, args[1:])
	default:
		return fmt.Errorf("unknown subcommand %q\n%s", args[0], benchUsage)
	}
}
