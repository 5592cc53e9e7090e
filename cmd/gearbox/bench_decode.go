package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/kernels/cuda"
	"github.com/gearbox-inference/gearbox/precision"
)

// decodeReport is what bench decode writes with --json.
type decodeReport struct {
	Date    time.Time       `json:"date"`
	Device  cuda.DeviceInfo `json:"device"`
	Results []cuda.LMResult `json:"results"`
}

// decodeFlags are bench decode's flags.
type decodeFlags struct {
	precisions, batches, prompts, jsonOut, mdOut string
	steps, prefillTokens, device                 int
	minSeconds                                   float64
	noPrefill                                    bool
}

func newBenchDecodeCmd(a *app) *cobra.Command {
	var f decodeFlags
	c := &cobra.Command{
		Use:   "decode [flags]",
		Short: "Language-model prefill and decode per precision and batch on the GPU: tok/s, TTFT, joules",
		Long: "Prefill and decode of a random model with Llama-3.1-8B's shapes on one GPU, through the CUDA backend's Step, " +
			"for each precision, batch and prompt length: time to first token, decode tokens/s against the memory-bandwidth " +
			"ceiling (the weight and KV bytes a step reads at an H200's 4.8 TB/s), and joules per 1,000 generated tokens from " +
			"the GPU's energy counter (NVML, in binaries built with the nvml tag). Cases that ran before an error are still reported.",
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchDecode(cmd.Context(), a.log, f, cmd.OutOrStdout())
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.precisions, "precisions", "bf16,fp8,fp4", "precisions, comma-separated")
	fs.StringVar(&f.batches, "batches", "1,8,64,256", "sequences decoding together, comma-separated")
	fs.StringVar(&f.prompts, "prompts", "128,2048", "prompt lengths, comma-separated")
	fs.IntVar(&f.steps, "steps", 20, "timed decode steps a run (the median step is reported)")
	fs.Float64Var(&f.minSeconds, "min-seconds", 1, "run the timed steps again until they have taken this long (the energy counter's window)")
	fs.IntVar(&f.prefillTokens, "prefill-tokens", 2048, "most prompt tokens a prefill step feeds (the engine's token budget)")
	fs.BoolVar(&f.noPrefill, "no-prefill", false, "write random K and V into the cache instead of prefilling (no TTFT; seconds instead of minutes)")
	fs.IntVar(&f.device, "device", 0, "CUDA device ordinal")
	fs.StringVar(&f.jsonOut, "json", "", "also write every number as JSON to this file")
	fs.StringVar(&f.mdOut, "md", "", "also write the table as Markdown (docs/benchmarks.md) to this file")
	return c
}

// benchDecode runs cuda.Backend.BenchLM with prefill and the GPU's energy
// counter and prints the table.
func benchDecode(ctx context.Context, log zerolog.Logger, f decodeFlags, out io.Writer) error {
	cfg := cuda.LMBench{Steps: f.steps, MinSeconds: f.minSeconds, Prefill: !f.noPrefill, PrefillTokens: f.prefillTokens}
	var err error
	if cfg.Batches, err = parseInts(f.batches); err != nil {
		return usageError{fmt.Errorf("--batches: %w", err)}
	}
	if cfg.Prompts, err = parseInts(f.prompts); err != nil {
		return usageError{fmt.Errorf("--prompts: %w", err)}
	}
	for _, s := range strings.Split(f.precisions, ",") {
		p, err := precision.Parse(strings.TrimSpace(s))
		if err != nil || p != precision.BF16 && p != precision.FP8 && p != precision.FP4 {
			return usageError{fmt.Errorf("--precisions: %q: want bf16, fp8 or fp4", s)}
		}
		cfg.Precisions = append(cfg.Precisions, p)
	}
	switch {
	case f.steps < 1:
		return usageError{fmt.Errorf("--steps %d: want at least 1", f.steps)}
	case f.prefillTokens < 1:
		return usageError{fmt.Errorf("--prefill-tokens %d: want at least 1", f.prefillTokens)}
	case !(f.minSeconds >= 0) || math.IsInf(f.minSeconds, 1):
		return usageError{fmt.Errorf("--min-seconds %v: want a finite 0 or more", f.minSeconds)}
	}
	b, err := cuda.New(cuda.Config{Device: f.device, Logger: &log})
	if err != nil {
		return fmt.Errorf("a CUDA GPU is needed: %w", err)
	}
	defer b.Close()
	info := b.Info()
	rep := decodeReport{Date: time.Now().UTC(), Device: info}
	if d := openGPUMon(b.Name(), b.UUID(), log); d != nil {
		defer d.Close()
		// A GPU without an energy counter (a MIG instance, an older part)
		// runs without joules rather than failing every case.
		if _, err := d.Energy(); err != nil {
			log.Warn().Err(err).Msg("no energy counter: J/1k tokens not measured")
		} else {
			cfg.Energy = d.Energy
		}
	}
	fmt.Fprintf(out, "%s (cc %d.%d, %d SMs), driver %d, NVRTC %s, %s; Llama-3.1-8B's shapes, random weights; ceiling: bytes a step reads at %.1f TB/s (an H200's)\n",
		info.Name, info.Major, info.Minor, info.SMs, info.DriverVersion, info.NVRTCVersion, rep.Date.Format("2006-01-02"), cuda.HBMBandwidth/1e12)
	cfg.Progress = func(r cuda.LMResult) {
		log.Info().Str("precision", string(r.Precision)).Int("batch", r.Batch).Int("prompt", r.Prompt).
			Float64("ttft_ms", r.TTFTMS).Float64("tok_per_s", r.TokPerS).Msg("case done")
	}
	// What ran before an error (out of memory at a large batch, Ctrl-C) is
	// still printed and written.
	rep.Results, err = b.BenchLM(ctx, cfg)
	if werr := writeDecode(out, &rep, f); err == nil {
		err = werr
	}
	return err
}

// writeDecode prints rep's table and writes the files f asks for.
func writeDecode(out io.Writer, rep *decodeReport, f decodeFlags) error {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "precision\tbatch\tprompt\tTTFT p50 ms\tprefill ms\tprefill tok/s\tstep ms\ttok/s\tceiling tok/s\tof ceiling\tJ/1k tokens\t")
	for _, r := range rep.Results {
		c := decodeCells(r)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%.2f\t%.0f\t%.0f\t%.0f %%\t%s\t\n", r.Precision, r.Batch, r.Prompt, c.ttft, c.last, c.prefill,
			r.StepMS, r.TokPerS, r.CeilingTokPerS, 100*r.Fraction, c.joules)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if f.mdOut != "" {
		if err := os.WriteFile(f.mdOut, []byte(markdownDecode(rep)), 0o644); err != nil {
			return err
		}
	}
	if f.jsonOut != "" {
		return writeJSONFile(f.jsonOut, rep)
	}
	return nil
}

// decodeCell is a result's figures that may be absent, as printed: "-"
// where the run did not measure them.
type decodeCell struct{ ttft, last, prefill, joules string }

func decodeCells(r cuda.LMResult) decodeCell {
	c := decodeCell{"-", "-", "-", "-"}
	if r.LastTTFTMS > 0 {
		c.ttft, c.last, c.prefill = fmt.Sprintf("%.1f", r.TTFTMS), fmt.Sprintf("%.1f", r.LastTTFTMS), fmt.Sprintf("%.0f", r.PrefillTokPerS)
	}
	if r.JoulesPer1kTokens != nil {
		c.joules = fmt.Sprintf("%.1f", *r.JoulesPer1kTokens)
	}
	return c
}

// markdownDecode renders the report as a table of docs/benchmarks.md.
func markdownDecode(rep *decodeReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s (driver %d, NVRTC %s)\n\n", rep.Date.Format("2006-01-02"), rep.Device.Name, rep.Device.DriverVersion, rep.Device.NVRTCVersion)
	b.WriteString("| precision | batch | prompt | TTFT p50 ms | prefill ms | prefill tok/s | step ms | tok/s | ceiling tok/s | of ceiling | J/1k tokens |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Results {
		c := decodeCells(r)
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %.2f | %.0f | %.0f | %.0f %% | %s |\n", r.Precision, r.Batch, r.Prompt, c.ttft, c.last, c.prefill,
			r.StepMS, r.TokPerS, r.CeilingTokPerS, 100*r.Fraction, c.joules)
	}
	return b.String()
}
