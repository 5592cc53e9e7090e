package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/kernels/cuda"
)

// kernelsReport is what bench kernels writes with --json.
type kernelsReport struct {
	Date    time.Time           `json:"date"`
	Device  cuda.DeviceInfo     `json:"device"`
	Results []cuda.LinearResult `json:"results"`
	Torch   *torchReport        `json:"torch,omitempty"`
}

// torchReport is bench/torch_linear.py's output.
type torchReport struct {
	Device  string `json:"device"`
	Torch   string `json:"torch"`
	CUDA    string `json:"cuda"`
	Results []struct {
		Path    string `json:"path"`
		M, N, K int
		US      float64 `json:"us"`
		Error   string  `json:"error"`
	} `json:"results"`
}

// kernelsFlags are bench kernels' flags.
type kernelsFlags struct {
	ms, shapes, paths, torch, python, jsonOut, mdOut, plot string
	iters, warmup, device                                  int
}

func newBenchKernelsCmd(a *app) *cobra.Command {
	var f kernelsFlags
	c := &cobra.Command{
		Use:   "kernels [flags]",
		Short: "Linear-layer timings per precision on the GPU (and PyTorch's)",
		Long:  "Linear-layer times per precision on the GPU, and PyTorch's on the same shapes.",
		Args:  argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchKernels(cmd.Context(), a.log, f, cmd.OutOrStdout())
		},
	}
	fs := c.Flags()
	fs.StringVarP(&f.ms, "m", "m", "1,16,64,256,1024,4096,8192", "batch sizes M")
	fs.StringVar(&f.shapes, "shapes", "8192x8192,14336x4096", "weight shapes NxK (output x input features)")
	fs.StringVar(&f.paths, "paths", "", "paths to time (default all: "+strings.Join(cuda.BenchPaths, ",")+")")
	fs.IntVar(&f.iters, "iters", 50, "timed runs per case (the median is reported)")
	fs.IntVar(&f.warmup, "warmup", 5, "untimed runs first")
	fs.IntVar(&f.device, "device", 0, "CUDA device ordinal")
	fs.StringVar(&f.torch, "torch", "bench/torch_linear.py", `PyTorch comparison script ("" to skip)`)
	fs.StringVar(&f.python, "python", "python3", "Python interpreter for --torch")
	fs.StringVar(&f.jsonOut, "json", "", "also write every number as JSON to this file")
	fs.StringVar(&f.mdOut, "md", "", "also write the tables as Markdown (docs/benchmarks.md) to this file")
	fs.StringVar(&f.plot, "plot", "", "also draw TFLOP/s and weight GB/s per path to this file (.png or .svg)")
	return c
}

// benchKernels times each precision's linear layer on the GPU
// (cuda.Backend.BenchLinear) and, in the same invocation, PyTorch's on the
// same shapes (bench/torch_linear.py), and prints them side by side.
func benchKernels(ctx context.Context, log zerolog.Logger, f kernelsFlags, out io.Writer) error {
	ms, err := parseInts(f.ms)
	if err != nil {
		return fmt.Errorf("-m: %w", err)
	}
	shapes, err := parseShapes(f.shapes)
	if err != nil {
		return fmt.Errorf("-shapes: %w", err)
	}
	var paths []string
	if f.paths != "" {
		paths = strings.Split(f.paths, ",")
	}
	b, err := cuda.New(cuda.Config{Device: f.device, Logger: &log})
	if err != nil {
		return err
	}
	defer b.Close()
	info := b.Info()
	rep := kernelsReport{Date: time.Now().UTC(), Device: info}
	fmt.Fprintf(out, "%s (cc %d.%d, %d SMs), driver %d, NVRTC %s, cuBLASLt %d, %s\n",
		info.Name, info.Major, info.Minor, info.SMs, info.DriverVersion, info.NVRTCVersion, info.CublasLt, rep.Date.Format("2006-01-02"))
	rep.Results, err = b.BenchLinear(ctx, cuda.LinearBench{
		Ms: ms, Shapes: shapes, Paths: paths, Iters: f.iters, Warmup: f.warmup,
		Progress: func(r cuda.LinearResult) {
			log.Debug().Str("path", r.Path).Int("M", r.M).Int("N", r.N).Int("K", r.K).
				Float64("layer_us", r.LayerUS).Float64("gemm_us", r.GemmUS).Msg("timed")
		},
	})
	if err != nil {
		return err
	}
	b.Close() // free the GPU for PyTorch
	if f.torch != "" {
		rep.Torch, err = runTorch(ctx, f.python, f.torch, f.ms, f.shapes, f.iters, f.warmup)
		if err != nil {
			log.Warn().Err(err).Msg("PyTorch comparison skipped")
		}
	}
	printKernels(out, &rep)
	if f.mdOut != "" {
		if err := os.WriteFile(f.mdOut, []byte(markdownKernels(&rep, ms, shapes)), 0o644); err != nil {
			return err
		}
	}
	if f.plot != "" {
		if err := plotKernels(f.plot, &rep, ms, shapes); err != nil {
			return err
		}
	}
	if f.jsonOut != "" {
		return writeJSONFile(f.jsonOut, rep)
	}
	return nil
}

// kernelKey names one measurement: a path at one shape.
type kernelKey struct {
	path    string
	m, n, k int
}

// index maps each of our results and each of PyTorch's times (µs) by key.
func (rep *kernelsReport) index() (ours map[kernelKey]cuda.LinearResult, torch map[kernelKey]float64) {
	ours, torch = map[kernelKey]cuda.LinearResult{}, map[kernelKey]float64{}
	for _, r := range rep.Results {
		ours[kernelKey{r.Path, r.M, r.N, r.K}] = r
	}
	if rep.Torch != nil {
		for _, r := range rep.Torch.Results {
			if r.Error == "" {
				torch[kernelKey{r.Path, r.M, r.N, r.K}] = r.US
			}
		}
	}
	return ours, torch
}

// markdownKernels renders the report as the tables of docs/benchmarks.md:
// per shape, each path's layer time, and the GEMMs next to PyTorch's.
func markdownKernels(rep *kernelsReport, ms []int, shapes [][2]int) string {
	ours, torch := rep.index()
	var b strings.Builder
	cell := func(path string, m, n, k int, gemm bool) string {
		r, ok := ours[kernelKey{path, m, n, k}]
		switch {
		case !ok:
			return "-"
		case gemm:
			return fmt.Sprintf("%.1f", r.GemmUS)
		}
		return fmt.Sprintf("%.1f", r.LayerUS)
	}
	ratio := func(num, den float64) string {
		if num == 0 || den == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", num/den)
	}
	paths := []string{"fp32", "tf32", "bf16", "fp16", "fp8", "fp8-tensor", "fp4"}
	for _, s := range shapes {
		n, k := s[0], s[1]
		fmt.Fprintf(&b, "\n**N×K = %d×%d, whole layer** (µs, median; from an fp32 input, conversion included)\n\n", n, k)
		fmt.Fprintf(&b, "| M | %s | fp8 × bf16 | fp4 × bf16 | fp4 runs on |\n|%s\n", strings.Join(paths, " | "), strings.Repeat("---|", len(paths)+4))
		for _, m := range ms {
			fmt.Fprintf(&b, "| %d |", m)
			for _, p := range paths {
				fmt.Fprintf(&b, " %s |", cell(p, m, n, k, false))
			}
			bf := ours[kernelKey{"bf16", m, n, k}].LayerUS
			f4 := ours[kernelKey{"fp4", m, n, k}]
			where := "bf16 GEMM"
			if f4.Mode == "nvfp4 kernel" {
				where = "NVFP4 kernel"
			}
			fmt.Fprintf(&b, " %s | %s | %s |\n", ratio(bf, ours[kernelKey{"fp8", m, n, k}].LayerUS), ratio(bf, f4.LayerUS), where)
		}
		fmt.Fprintf(&b, "\n**N×K = %d×%d, GEMM alone vs PyTorch** (µs; in brackets PyTorch's time / ours)\n\n", n, k)
		b.WriteString("| M | tf32 | bf16 | fp16 | fp8 per-channel | fp8 per-tensor | PyTorch `_scaled_mm` | fp8 layer | PyTorch fp8 layer |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, m := range ms {
			fmt.Fprintf(&b, "| %d |", m)
			for _, p := range []string{"tf32", "bf16", "fp16"} {
				g := ours[kernelKey{p, m, n, k}].GemmUS
				fmt.Fprintf(&b, " %.1f (%s) |", g, ratio(torch[kernelKey{p, m, n, k}], g))
			}
			tf := func(p string) string {
				if t, ok := torch[kernelKey{p, m, n, k}]; ok {
					return fmt.Sprintf("%.1f", t)
				}
				return "-"
			}
			fmt.Fprintf(&b, " %s | %s | %s | %s | %s |\n", cell("fp8", m, n, k, true), cell("fp8-tensor", m, n, k, true),
				tf("fp8"), cell("fp8", m, n, k, false), tf("fp8-layer"))
		}
	}
	return b.String()
}

// runTorch runs the PyTorch script and decodes its JSON.
func runTorch(ctx context.Context, python, script, ms, shapes string, iters, warmup int) (*torchReport, error) {
	cmd := exec.CommandContext(ctx, python, script, "--ms", ms, "--shapes", shapes,
		"--iters", strconv.Itoa(iters), "--warmup", strconv.Itoa(warmup))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", python, script, err, lastLines(stderr.String(), 5))
	}
	var tr torchReport
	if err := json.Unmarshal(out.Bytes(), &tr); err != nil {
		return nil, fmt.Errorf("%s: output: %w", script, err)
	}
	return &tr, nil
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// printKernels prints one table per shape and the targets.
func printKernels(out io.Writer, rep *kernelsReport) {
	ours, torch := rep.index()
	if rep.Torch != nil {
		fmt.Fprintf(out, "PyTorch %s (CUDA %s) on %s\n", rep.Torch.Torch, rep.Torch.CUDA, rep.Torch.Device)
	}
	// torchPeer is the PyTorch path compared with each of ours, and whether
	// the comparison is GEMM to GEMM (PyTorch's input is already in the
	// format) or layer to layer.
	torchPeer := map[string]struct {
		path string
		gemm bool
	}{
		"fp32": {"fp32", true}, "tf32": {"tf32", true}, "bf16": {"bf16", true}, "fp16": {"fp16", true},
		"fp8": {"fp8-layer", false}, "fp8-tensor": {"fp8-layer", false},
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "N×K\tM\tpath\tlayer µs\tGEMM µs\tTFLOP/s\tweight GB/s\t× bf16 (layer)\tPyTorch µs\tPyTorch / ours\thow\t")
	for _, r := range rep.Results {
		bf := ours[kernelKey{"bf16", r.M, r.N, r.K}]
		ratio := "-"
		if bf.LayerUS > 0 {
			ratio = fmt.Sprintf("%.2f", bf.LayerUS/r.LayerUS)
		}
		tu, tr := "-", "-"
		if peer, ok := torchPeer[r.Path]; ok {
			if t, ok := torch[kernelKey{peer.path, r.M, r.N, r.K}]; ok {
				mine := r.LayerUS
				if peer.gemm {
					mine = r.GemmUS
				}
				tu = fmt.Sprintf("%.1f", t)
				tr = fmt.Sprintf("%.2f", t/mine)
			}
		}
		fmt.Fprintf(w, "%d×%d\t%d\t%s\t%.1f\t%.1f\t%.1f\t%.0f\t%s\t%s\t%s\t%s\t\n",
			r.N, r.K, r.M, r.Path, r.LayerUS, r.GemmUS, r.TFLOPs, r.WeightGB, ratio, tu, tr, r.Mode)
	}
	w.Flush()
	// Targets (issue 4).
	fmt.Fprintln(out, "\ntargets:")
	for _, r := range rep.Results {
		switch {
		case (r.Path == "bf16" || r.Path == "fp16" || r.Path == "tf32"):
			if t, ok := torch[kernelKey{r.Path, r.M, r.N, r.K}]; ok && r.M >= 16 {
				fmt.Fprintf(out, "  %-5s ≥ 0.95× PyTorch  M=%-5d %d×%d: %.2f× %s\n", r.Path, r.M, r.N, r.K, t/r.GemmUS, mark(t/r.GemmUS >= 0.95))
			}
		case r.Path == "fp8" && r.M == 8192 && r.N == 8192 && r.K == 8192:
			bf := ours[kernelKey{"bf16", r.M, r.N, r.K}]
			fmt.Fprintf(out, "  fp8 ≥ 1.8× bf16 at 8192³: layer %.2f× %s, GEMM alone %.2f×\n",
				bf.LayerUS/r.LayerUS, mark(bf.LayerUS/r.LayerUS >= 1.8), bf.GemmUS/r.GemmUS)
		case r.Path == "fp4" && r.M <= 16 && r.N == 8192 && r.K == 8192:
			bf := ours[kernelKey{"bf16", r.M, r.N, r.K}]
			fmt.Fprintf(out, "  fp4 ≥ 3× bf16 at M=%d, 8192²: %.2f× %s\n", r.M, bf.LayerUS/r.LayerUS, mark(bf.LayerUS/r.LayerUS >= 3))
		}
	}
}

func mark(ok bool) string {
	if ok {
		return "(met)"
	}
	return "(NOT met)"
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseShapes(s string) ([][2]int, error) {
	var out [][2]int
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.ToLower(strings.TrimSpace(f)), "x")
		n, err1 := strconv.Atoi(a)
		k, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n <= 0 || k <= 0 {
			return nil, fmt.Errorf("%q is not NxK", f)
		}
		out = append(out, [2]int{n, k})
	}
	return out, nil
}
