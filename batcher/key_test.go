package batcher_test

import (
	"testing"

	"github.com/gearbox-inference/gearbox/batcher"
)

func TestKeyString(t *testing.T) {
	if got, want := (batcher.Key{Model: "mlp", Precision: "fp8"}).String(), "mlp/fp8"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}
