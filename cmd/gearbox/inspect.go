package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"text/tabwriter"

	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

// printPrecisions writes each precision's weight bytes and, when rows > 0,
// its relative L2 error on rows random N(0,1) inputs against the float64
// reference, measured with the CPU backend's exact emulation.
func printPrecisions(w io.Writer, m *model.Model, rows int) error {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		return err
	}
	var in []float32
	var ref []float64
	if rows > 0 {
		rng := rand.New(rand.NewPCG(1, 2))
		in = make([]float32, rows*m.InputFeatures)
		in64 := make([]float64, len(in))
		for i := range in {
			in[i] = float32(rng.NormFloat64())
			in64[i] = float64(in[i])
		}
		if ref, err = cpu.Reference(m, in64, rows); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "precision\tweight bytes\tvs fp32\terror bound (prior)\t"
	if rows > 0 {
		head += fmt.Sprintf("measured error (%d rows)\t", rows)
	}
	fmt.Fprintln(tw, head)
	fp32 := m.WeightBytesAt(precision.FP32)
	for _, p := range precision.All {
		wb := m.WeightBytesAt(p)
		line := fmt.Sprintf("%s\t%d\t%.3f\t%.2g\t", p, wb, float64(wb)/float64(fp32), precision.ErrorBound(p))
		if rows > 0 {
			out, err := b.Forward(context.Background(), m, p, in, rows)
			if err != nil {
				return err
			}
			line += fmt.Sprintf("%.3e\t", quality.Compare(out, ref, rows, m.OutputFeatures, false).RelL2)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
