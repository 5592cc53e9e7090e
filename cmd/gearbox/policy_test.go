package main

import (
	"bytes"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

func TestParseArgsInterspersed(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--max-error", "0.1", "--pin"},
		{"--max-error", "0.1", "demo", "--pin"},
		{"--pin", "--max-error=0.1", "demo"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		maxErr := fs.Float64("max-error", -1, "")
		pin := fs.Bool("pin", false, "")
		pos, err := parseArgs(fs, args)
		if err != nil || !slices.Equal(pos, []string{"demo"}) || *maxErr != 0.1 || !*pin {
			t.Errorf("%q: positional %q, max-error %g, pin %v, err %v", args, pos, *maxErr, *pin, err)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseArgs(fs, []string{"demo", "--nope"}); err == nil {
		t.Error("an unknown flag after the model was accepted")
	}
}

func TestPrintPolicy(t *testing.T) {
	var b bytes.Buffer
	printPolicy(&b, 3, &gearbox.Policy{
		Model: "demo", Precision: precision.FP8, Floor: precision.FP4, Ceiling: precision.FP32, MaxError: 0.1,
		Reason:   "fp8 error upper bound 0.04 over 20 reports is within 0.5 × max_error 0.1",
		Evidence: &gearbox.Evidence{Precision: precision.FP8, Samples: 20, Workers: 3, UpperBound: 0.04, Mean: 0.03, FirstSeq: 10, LastSeq: 29},
		Measured: map[precision.Format]float64{precision.BF16: 0.004, precision.FP8: 0.04},
		Excluded: []precision.Format{precision.FP4},
		Seq:      29, By: "w1", UpdatedAt: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC),
	})
	for _, want := range []string{"demo (revision 3)", "fp8 [floor fp4, ceiling fp32]", "max_error  0.1", "20 reports from 3 workers (seq 10–29)",
		"bf16 0.004, fp8 0.04", "[fp4] (non-finite outputs)", "by         w1 at"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
