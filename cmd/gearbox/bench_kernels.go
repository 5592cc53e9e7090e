package main

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
)

// benchKernels is being written (issue 4).
func benchKernels(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	return errors.New("bench kernels: not built yet")
}
