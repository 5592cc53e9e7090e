//go:build cgo

package cuda

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// newTestBackend opens device 0 with its own cache folder, or skips with
// the loader's error.
// emulatorName is the device name of emu/'s emulator.
const emulatorName = "Gearbox CUDA emulator"

func newTestBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	b, err := New(cfg)
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestCubinCache(t *testing.T) {
	dir := t.TempDir()
	b := newTestBackend(t, Config{CacheDir: dir})
	err := b.do(context.Background(), func(d *devState) error {
		src := program{name: "k.cu", src: `extern "C" __global__ void k(float *x) { x[threadIdx.x] *= 2.0f; }`}
		opts := d.comp.options()
		before := d.comp.compiles
		c1, err := d.comp.compile(src, opts)
		if err != nil {
			return err
		}
		c2, err := d.comp.compile(src, opts)
		if err != nil {
			return err
		}
		if got := d.comp.compiles - before; got != 1 {
			t.Errorf("two compiles of one source ran NVRTC %d times, want 1", got)
		}
		if string(c1) != string(c2) {
			t.Error("cached cubin differs from the compiled one")
		}
		if _, err := os.Stat(filepath.Join(dir, d.comp.cacheKey(src, opts)+".cubin")); err != nil {
			t.Errorf("cache file: %v", err)
		}
		// Other options, other key.
		if d.comp.cacheKey(src, opts) == d.comp.cacheKey(src, d.comp.options("-lineinfo")) {
			t.Error("options do not change the cache key")
		}
		m, err := cuModuleLoad(c2)
		if err != nil {
			return err
		}
		return m.unload()
	})
	if err != nil {
		t.Fatal(err)
	}
	// The ops module itself (its source and headers) was cached by New: a
	// second backend compiles nothing.
	b2 := newTestBackend(t, Config{CacheDir: dir})
	_ = b2.do(context.Background(), func(d *devState) error {
		if d.comp.compiles != 0 {
			t.Errorf("second open compiled %d sources, want 0 (cache)", d.comp.compiles)
		}
		return nil
	})
}

func TestCompileError(t *testing.T) {
	b := newTestBackend(t, Config{})
	if b.Info().Name == emulatorName {
		t.Skip("the emulator's NVRTC compiles nothing (its kernels are built in), so it reports no compile error")
	}
	err := b.do(context.Background(), func(d *devState) error {
		_, err := d.comp.compile(program{name: "broken.cu", src: `extern "C" __global__ void k(float *x) { x[0] = undeclared_thing; }`}, d.comp.options())
		return err
	})
	if !errors.Is(err, ErrCompile) {
		t.Fatalf("compile of a broken source = %v, want ErrCompile", err)
	}
	var ce *CompileError
	if !errors.As(err, &ce) || !strings.Contains(ce.Log, "undeclared_thing") {
		t.Errorf("error %v does not carry NVRTC's log naming the identifier", err)
	}
}

func TestOOMSplit(t *testing.T) {
	b := newTestBackend(t, Config{})
	m, err := model.Synth(model.SynthConfig{Name: "split", Dims: []int{64, 128, 32}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 37
	in := make([]float32, rows*64)
	for i := range in {
		in[i] = float32(math.Sin(float64(i)))
	}
	want, err := b.Forward(context.Background(), m, precision.FP32, in, rows)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	oomHook = func(r int) bool { seen = append(seen, r); return r > 8 }
	defer func() { oomHook = nil }()
	got, err := b.Forward(context.Background(), m, precision.FP32, in, rows)
	if err != nil {
		t.Fatalf("Forward with every batch over 8 rows out of memory: %v", err)
	}
	if len(seen) < 5 {
		t.Errorf("allocations tried for %v rows: want the batch split down to <= 8", seen)
	}
	if e := relL2(got, want); !(e < 1e-6) {
		t.Errorf("split result differs from the whole batch's: rel L2 %g", e)
	}
	// A single row that cannot be allocated fails with ErrOutOfMemory.
	oomHook = func(int) bool { return true }
	if _, err := b.Forward(context.Background(), m, precision.FP32, in[:64], 1); !errors.Is(err, ErrOutOfMemory) {
		t.Errorf("Forward of one row with no memory = %v, want ErrOutOfMemory", err)
	}
}

func TestEvictAndClose(t *testing.T) {
	b := newTestBackend(t, Config{})
	m, err := model.Synth(model.SynthConfig{Name: "evict", Dims: []int{32, 32}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 32)
	for i := range in {
		in[i] = float32(i) - 10
	}
	for _, p := range []precision.Format{precision.FP32, precision.FP8, precision.FP4} {
		if _, err := b.Forward(context.Background(), m, p, in, 1); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (n int) {
		_ = b.do(context.Background(), func(d *devState) error { n = len(d.weights); return nil })
		return n
	}
	if n := count(); n != 3 {
		t.Errorf("%d weight sets cached, want 3", n)
	}
	b.Evict(m)
	if n := count(); n != 0 {
		t.Errorf("%d weight sets after Evict, want 0", n)
	}
	b.Close()
	if _, err := b.Forward(context.Background(), m, precision.FP32, in, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close = %v, want ErrClosed", err)
	}
}

// TestQuantizersMatchCPU checks the GPU's activation conversions byte for
// byte against package precision.
func TestQuantizersMatchCPU(t *testing.T) {
	b := newTestBackend(t, Config{FP8Margin: 1})
	const n = 1 << 17 // past fp8SmallQuant: both quantize paths run
	x := make([]float32, n)
	for i := range x {
		// Many magnitudes, ties, subnormals, values past 448 after scaling.
		x[i] = float32(math.Ldexp(float64(int32(uint32(i)*2654435761)>>8), int(i%60)-70))
	}
	x[0], x[1], x[2] = 0, float32(math.Copysign(0, -1)), 1e30
	err := b.do(context.Background(), func(d *devState) error {
		dx, err := cuMalloc(4 * n)
		if err != nil {
			return err
		}
		defer cuFree(dx)
		dy, err := cuMalloc(4 * n)
		if err != nil {
			return err
		}
		defer cuFree(dy)
		if err := cuUpload(dx, f32Bytes(x)); err != nil {
			return err
		}
		// get downloads bytes of dy; on error it returns zeros and the
		// comparisons fail (no t.Fatal off the test goroutine).
		get := func(bytes int) []byte {
			out := make([]byte, bytes)
			if err := d.stream.sync(); err != nil {
				t.Error(err)
			} else if err := cuDownload(out, dy); err != nil {
				t.Error(err)
			}
			return out
		}
		// bf16 and fp16
		for _, c := range []struct {
			kernel string
			conv   func(s cuStream, x, y uint64, n int) error
			enc    func(float32) uint16
		}{{"gbx_to_bf16", d.k.toBF16, precision.EncodeBF16}, {"gbx_to_fp16", d.k.toFP16, precision.EncodeFP16}} {
			if err := c.conv(d.stream, dx, dy, n); err != nil {
				return err
			}
			got := get(2 * n)
			for i, v := range x {
				if g, w := uint16(got[2*i])|uint16(got[2*i+1])<<8, c.enc(v); g != w {
					t.Errorf("%s(%g) = %#04x, want %#04x", c.kernel, v, g, w)
					break
				}
			}
		}
		// tf32
		if err := d.k.toTF32(d.stream, dx, dy, n); err != nil {
			return err
		}
		got := get(4 * n)
		for i, v := range x {
			g := uint32(got[4*i]) | uint32(got[4*i+1])<<8 | uint32(got[4*i+2])<<16 | uint32(got[4*i+3])<<24
			if w := math.Float32bits(precision.RoundTF32(v)); g != w {
				t.Errorf("tf32(%g) = %#08x, want %#08x", v, g, w)
				break
			}
		}
		// fp8, per row (every forward pass): each row's scale and bytes,
		// rows with the 1e30 outlier, Inf, NaN and zeros among them.
		const cols = 1000
		rowsIn := slices.Clone(x[:64*cols])
		rowsIn[5*cols+7] = float32(math.Inf(-1))
		rowsIn[9*cols+3] = float32(math.NaN())
		clear(rowsIn[11*cols : 12*cols])
		if err := cuUpload(dx, f32Bytes(rowsIn)); err != nil {
			return err
		}
		for _, f32 := range []bool{false, true} {
			dl := &devLayer{in: cols, fp8F32: f32}
			if err := d.fp8Activations(dl, dx, dy, 64); err != nil {
				return err
			}
			got := get(4 * len(rowsIn))
			sb := make([]byte, 4*64)
			if err := cuDownload(sb, d.xvec); err != nil {
				return err
			}
			for r := range 64 {
				row := rowsIn[r*cols : (r+1)*cols]
				s := precision.FP8Scale(precision.Amax(row), 1)
				if g := math.Float32frombits(binary.LittleEndian.Uint32(sb[4*r:])); g != s && !(math.IsInf(float64(g), 1) && math.IsInf(float64(s), 1)) {
					t.Errorf("fp8 row %d scale = %g, want %g", r, g, s)
				}
				for i, v := range row {
					w := precision.EncodeE4M3(v / s)
					g := got[r*cols+i]
					if f32 {
						gv := math.Float32frombits(binary.LittleEndian.Uint32(got[4*(r*cols+i):]))
						wv := precision.DecodeE4M3(w)
						if math.Float32bits(gv) != math.Float32bits(wv) && !(gv != gv && wv != wv) {
							t.Errorf("fp8 (as f32) row %d: E4M3(%g / %g) = %g, want %g", r, v, s, gv, wv)
							break
						}
						continue
					}
					if g != w {
						t.Errorf("fp8 row %d: E4M3(%g / %g) = %#02x, want %#02x", r, v, s, g, w)
						break
					}
				}
			}
		}
		// fp8, per tensor (the benchmarks' fp8-tensor path): amax, scale
		// and bytes, with and without the 1e30 outlier; the small case
		// takes the one-block kernel.
		for _, in := range [][]float32{x, x[3:], x[3 : 3+5000], x[:777]} {
			cnt := len(in)
			if err := cuUpload(dx, f32Bytes(in)); err != nil {
				return err
			}
			if err := d.fp8Activations(&devLayer{in: cnt, perTensor: true}, dx, dy, 1); err != nil {
				return err
			}
			got := get(cnt)
			s := precision.FP8Scale(precision.Amax(in), 1)
			sb := make([]byte, 4)
			if err := d.stream.sync(); err != nil {
				return err
			}
			if err := cuDownload(sb, d.xscale); err != nil {
				return err
			}
			if g := math.Float32frombits(binary.LittleEndian.Uint32(sb)); g != s {
				t.Errorf("fp8 scale = %g, want %g", g, s)
			}
			for i, v := range in {
				if w := precision.EncodeE4M3(v / s); got[i] != w {
					t.Errorf("fp8(%g / %g) = %#02x, want %#02x", v, s, got[i], w)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFP4Paths checks the NVFP4 kernels (the small-batch one, and the wide
// one where the weights are tiled) against the dequantized-bf16 GEMM: the
// same operands, so only accumulation order differs. The shapes take the
// tiled layout (whole tiles of 16 rows and chunks of 128 columns) and the
// row-major exact path (the rest); the wide kernel's K in one CTA and
// split over 2-8 (its sums added by gbx_nvfp4_wide_sum), its last CTA's
// channels partly past N (272), its batch tiles full and partial.
func TestFP4Paths(t *testing.T) {
	kernel := newTestBackend(t, Config{FP4SmallM: 1 << 20, FP4WideM: -1})
	wide := newTestBackend(t, Config{FP4SmallM: -1, FP4WideM: 1 << 20, FP4WideMinWeights: -1})
	gemm := newTestBackend(t, Config{FP4SmallM: -1, FP4WideM: -1})
	if err := kernel.do(context.Background(), func(d *devState) error { return d.k.load(modFP4) }); err != nil {
		t.Skipf("no NVFP4 kernel: %v", err)
	}
	for _, dims := range [][]int{{512, 256, 384}, {40, 24}, {1024, 64}, {2816, 48, 32}, {128, 272}} {
		m, err := model.Synth(model.SynthConfig{Name: "fp4", Dims: dims, Act: model.ReLU, Seed: int64(dims[1])})
		if err != nil {
			t.Fatal(err)
		}
		for _, rows := range []int{1, 5, 16, 24, 40, 64, 130} { // every inner tiling: ≤ 8, 16, 32, 64 rows a CTA
			in := make([]float32, rows*dims[0])
			for i := range in {
				in[i] = float32(math.Sin(float64(i)*0.37)) * 3
			}
			b, err := gemm.Forward(context.Background(), m, precision.FP4, in, rows)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []struct {
				name string
				b    *Backend
			}{{"NVFP4 kernel", kernel}, {"wide NVFP4 kernel", wide}} {
				a, err := k.b.Forward(context.Background(), m, precision.FP4, in, rows)
				if err != nil {
					t.Fatal(err)
				}
				if e := relL2(a, b); !(e <= 1e-5) {
					t.Errorf("dims %v rows %d: %s vs bf16 GEMM rel L2 %g, want <= 1e-5", dims, rows, k.name, e)
				}
			}
		}
	}
}

// TestLibDirs checks the library search order: the override, the soname,
// $CUDA_HOME/lib64, /usr/local/cuda/lib64.
func TestLibDirs(t *testing.T) {
	t.Setenv(EnvLibDir, "/opt/mycuda/lib")
	t.Setenv("CUDA_HOME", "/opt/cuda-13")
	got := strings.Join(libDirs(), "|")
	if want := "/opt/mycuda/lib||/opt/cuda-13/lib64|/usr/local/cuda/lib64"; got != want {
		t.Errorf("libDirs() = %q, want %q", got, want)
	}
	t.Setenv(EnvLibDir, "")
	t.Setenv("CUDA_HOME", "")
	if got, want := strings.Join(libDirs(), "|"), "|/usr/local/cuda/lib64"; got != want {
		t.Errorf("libDirs() without variables = %q, want %q", got, want)
	}
}

// TestParseSpec checks the device specs the opener takes.
func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		spec string
		want int
		ok   bool
	}{{"cuda", 0, true}, {"cuda:0", 0, true}, {"cuda:3", 3, true}, {"cuda:", 0, false}, {"cuda:-1", 0, false}, {"cuda:x", 0, false}, {"gpu:0", 0, false}} {
		got, err := parseSpec(c.spec)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseSpec(%q) = %d, %v; want %d, ok %v", c.spec, got, err, c.want, c.ok)
		}
	}
}

// TestGraphReplay runs the same shapes repeatedly with fresh inputs: from
// the third call Forward replays a CUDA graph, whose results must be the
// eager passes' bit for bit.
func TestGraphReplay(t *testing.T) {
	g := newTestBackend(t, Config{})
	eager := newTestBackend(t, Config{NoGraphs: true})
	m, err := model.Synth(model.SynthConfig{Name: "graph", Dims: []int{256, 512, 128}, Act: model.GELU, Norm: true, Softmax: true, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range precision.All {
		for _, rows := range []int{3, 200} {
			for call := range 5 {
				in := make([]float32, rows*256)
				for i := range in {
					in[i] = float32(math.Sin(float64(i*(call+1)))) * 2
				}
				got, err := g.Forward(context.Background(), m, p, in, rows)
				if err != nil {
					t.Fatalf("%s rows %d call %d: %v", p, rows, call, err)
				}
				want, err := eager.Forward(context.Background(), m, p, in, rows)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
						t.Fatalf("%s rows %d call %d: output %d = %g, eager %g", p, rows, call, i, got[i], want[i])
					}
				}
			}
		}
	}
	var graphs int
	var gerr error
	var on bool
	_ = g.do(context.Background(), func(d *devState) error {
		graphs, gerr, on = len(d.graphs), d.graphErr, d.useGraphs
		return nil
	})
	if want := 2 * len(precision.All); graphs != want {
		t.Errorf("%d graphs captured, want %d (graphs on: %v, driver lacks: %q, last capture error: %v)", graphs, want, on, missingGraphSymbol(), gerr)
	}
}

func TestFormatUUID(t *testing.T) {
	gpu := [16]byte{0x5d, 0x3c, 0x01, 0x02, 0xab, 0xcd, 0x00, 0x0f, 0x10, 0x20, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}
	if got, want := formatUUID(gpu, gpu), "GPU-5d3c0102-abcd-000f-1020-deadbeef0001"; got != want {
		t.Errorf("formatUUID of a whole GPU = %q; want %q", got, want)
	}
	mig := gpu
	mig[15] = 0x02
	if got, want := formatUUID(gpu, mig), "MIG-5d3c0102-abcd-000f-1020-deadbeef0002"; got != want {
		t.Errorf("formatUUID of a MIG instance = %q; want %q", got, want)
	}
}

// relL2 is ‖got − want‖ / ‖want‖ in float64.
func relL2(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		num += float64(got[i]-want[i]) * float64(got[i]-want[i])
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}
