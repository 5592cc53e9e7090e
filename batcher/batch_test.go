package batcher_test

import (
	"testing"

	"github.com/gearbox-inference/gearbox/batcher"
)

func TestReasonString(t *testing.T) {
	tests := []struct {
		r    batcher.Reason
		want string
	}{
		{batcher.FlushFull, "full"},
		{batcher.FlushDelay, "delay"},
		{batcher.FlushDeadline, "deadline"},
		{batcher.FlushDrain, "drain"},
		{batcher.Reason(9), "Reason(9)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("Reason(%d).String() = %q; want %q", int(tt.r), got, tt.want)
		}
	}
}
