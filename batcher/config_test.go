package batcher_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/batcher"
)

func TestConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   batcher.Config
		want batcher.Config
	}{
		{"zero", batcher.Config{}, batcher.Config{MaxBatchRows: 256, MaxDelay: 5 * ms, MaxQueuedRows: 1024, MaxQueuedBytes: 256 << 20, DeadlineSlack: 5 * ms}},
		{"derived from set fields", batcher.Config{MaxBatchRows: 8, MaxDelay: time.Second},
			batcher.Config{MaxBatchRows: 8, MaxDelay: time.Second, MaxQueuedRows: 32, MaxQueuedBytes: 256 << 20, DeadlineSlack: time.Second}},
		{"all set", batcher.Config{MaxBatchRows: 2, MaxDelay: ms, MaxQueuedRows: 3, MaxQueuedBytes: 5, DeadlineSlack: 7 * ms},
			batcher.Config{MaxBatchRows: 2, MaxDelay: ms, MaxQueuedRows: 3, MaxQueuedBytes: 5, DeadlineSlack: 7 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.WithDefaults(); got != tt.want {
				t.Errorf("WithDefaults() = %+v; want %+v", got, tt.want)
			}
		})
	}
}

// TestDefaultConfig: the zero Config and DefaultConfig mean the same, and
// DefaultConfig leaves the derived fields to WithDefaults.
func TestDefaultConfig(t *testing.T) {
	d := batcher.DefaultConfig()
	if got, want := d.WithDefaults(), (batcher.Config{}).WithDefaults(); got != want {
		t.Errorf("DefaultConfig().WithDefaults() = %+v; want %+v", got, want)
	}
	if d.MaxQueuedRows != 0 || d.DeadlineSlack != 0 {
		t.Errorf("DefaultConfig() = %+v; want MaxQueuedRows and DeadlineSlack zero (derived)", d)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   batcher.Config
		field string // named in the error; "" for a valid config
	}{
		{"zero", batcher.Config{}, ""},
		{"set", batcher.Config{MaxBatchRows: 4, MaxDelay: ms, MaxQueuedRows: 4, DeadlineSlack: ms}, ""},
		{"negative MaxBatchRows", batcher.Config{MaxBatchRows: -1}, "MaxBatchRows"},
		{"negative MaxDelay", batcher.Config{MaxDelay: -ms}, "MaxDelay"},
		{"MaxQueuedRows below MaxBatchRows", batcher.Config{MaxBatchRows: 8, MaxQueuedRows: 7}, "MaxQueuedRows"},
		{"negative MaxQueuedRows", batcher.Config{MaxQueuedRows: -1}, "MaxQueuedRows"},
		{"negative DeadlineSlack", batcher.Config{DeadlineSlack: -ms}, "DeadlineSlack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Errorf("Validate() = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, batcher.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v; want an error wrapping ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %q; want it to name %s", err, tt.field)
			}
			if _, err := batcher.NewQueue[string](tt.cfg); !errors.Is(err, batcher.ErrInvalidConfig) {
				t.Errorf("NewQueue: %v; want an error wrapping ErrInvalidConfig", err)
			}
			if _, err := batcher.New[string](tt.cfg); !errors.Is(err, batcher.ErrInvalidConfig) {
				t.Errorf("New: %v; want an error wrapping ErrInvalidConfig", err)
			}
		})
	}
}
