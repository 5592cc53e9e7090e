package main

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
)

// benchE2E is being written (issue 4).
func benchE2E(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	return errors.New("bench e2e: not built yet")
}
