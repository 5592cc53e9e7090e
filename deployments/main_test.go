package deployments

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// Helm logs at info level that the chart's rules file is a link; keep
	// its warnings and errors only.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}
