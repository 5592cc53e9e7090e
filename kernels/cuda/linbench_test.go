package cuda_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels/cuda"
)

var (
	linBench       = flag.Bool("linbench", false, "run TestLinearBench, one linear layer per path, shape and batch (what `gearbox bench kernels` times, without PyTorch)")
	linBenchMs     = flag.String("linbench.m", "16,32,64,128,256", "batch sizes, comma-separated")
	linBenchShapes = flag.String("linbench.shapes", "6144x4096,4096x4096,28672x4096,4096x14336", "weight shapes NxK, comma-separated")
	linBenchPaths  = flag.String("linbench.paths", "bf16,fp8,fp4-kernel,fp4-wide,fp4-bf16", "paths (cuda.BenchPaths), comma-separated")
	linBenchCands  = flag.String("linbench.cands", "0", "cuBLASLt heuristic results to time (LinearBench.Cand; 0 its first, the backend's), comma-separated")
)

// TestLinearBench prints cuda.Backend.BenchLinear's table: the GPU's
// timings, a few megabytes of test binary to carry where the gearbox
// binary is too large.
func TestLinearBench(t *testing.T) {
	if !*linBench {
		t.Skip("-linbench not set")
	}
	b, err := cudaBackend()
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	var shapes [][2]int
	for _, s := range strings.Split(*linBenchShapes, ",") {
		var n, k int
		if _, err := fmt.Sscanf(s, "%dx%d", &n, &k); err != nil {
			t.Fatalf("-linbench.shapes %q: %v", s, err)
		}
		shapes = append(shapes, [2]int{n, k})
	}
	t.Log("| N×K | M | path | cand | layer µs | GEMM µs | TFLOP/s | weight GB/s | how |")
	for _, c := range ints(t, *linBenchCands) {
		rs, err := b.(*cuda.Backend).BenchLinear(context.Background(), cuda.LinearBench{Ms: ints(t, *linBenchMs), Shapes: shapes, Paths: strings.Split(*linBenchPaths, ","), Cand: c})
		if err != nil && c > 0 {
			t.Logf("candidate %d: %v", c, err) // the heuristic offers fewer
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			t.Logf("| %d×%d | %d | %s | %d | %.1f | %.1f | %.1f | %.0f | %s |", r.N, r.K, r.M, r.Path, c, r.LayerUS, r.GemmUS, r.TFLOPs, r.WeightGB, r.Mode)
		}
	}
}
