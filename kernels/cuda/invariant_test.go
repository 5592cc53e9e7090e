//go:build cgo

package cuda

import (
	"context"
	"errors"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

// TestBatchInvariantConfig: BatchInvariant (or its environment variable)
// turns the small-batch kernels and prefill attention off and refuses a
// config that asks for those kernels; a bad value of the variable is an
// error naming it.
func TestBatchInvariantConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		env  string
		ok   bool
		inv  bool
	}{
		{"off", Config{}, "", true, false},
		{"field", Config{BatchInvariant: true}, "", true, true},
		{"env true", Config{}, "true", true, true},
		{"env 1", Config{}, "1", true, true},
		{"env 0", Config{}, "0", true, false},
		{"env bad", Config{}, "yes", false, false},
		{"fp4 kernel", Config{BatchInvariant: true, FP4SmallM: 8}, "", false, false},
		{"gemv", Config{BatchInvariant: true, GEMVMaxRows: 4}, "", false, false},
		{"fp4 and gemv off", Config{BatchInvariant: true, FP4SmallM: -1, GEMVMaxRows: -1}, "", true, true},
		{"prefill attention off", Config{NoPrefillAttention: true}, "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvBatchInvariant, tc.env)
			c := tc.cfg
			err := c.validate()
			if !tc.ok {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("validate = %v; want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BatchInvariant != tc.inv {
				t.Errorf("BatchInvariant = %v; want %v", c.BatchInvariant, tc.inv)
			}
			if c.BatchInvariant && (c.FP4SmallM != -1 || c.GEMVMaxRows != -1 || !c.NoPrefillAttention) {
				t.Errorf("FP4SmallM, GEMVMaxRows, NoPrefillAttention = %d, %d, %v; want -1, -1, true", c.FP4SmallM, c.GEMVMaxRows, c.NoPrefillAttention)
			}
			if !c.BatchInvariant && c.NoPrefillAttention != tc.cfg.NoPrefillAttention {
				t.Errorf("NoPrefillAttention = %v; want it as set, %v", c.NoPrefillAttention, tc.cfg.NoPrefillAttention)
			}
		})
	}
}

// TestInvariantPlans: on a batch-invariant backend a GEMM's plans for
// every row count run the same algorithm (the same opaque bytes, from the
// same reference candidate), with and without a fused bias, at each
// precision the language models use; fp8 takes its scales the same way
// at every row count. Runs on the emulator, whose heuristic, like the
// real one, picks other tiles and split-K for other row counts.
func TestInvariantPlans(t *testing.T) {
	b := newTestBackend(t, Config{BatchInvariant: true})
	rows := []int{1, 3, 16, 17, 64, 127, 128, 200, 1000}
	const n, k = 256, 512
	err := b.do(context.Background(), func(d *devState) error {
		bias, err := cuMalloc(4 * n)
		if err != nil {
			return err
		}
		defer cuFree(bias)
		if err := d.growScaleVec(rows[len(rows)-1]); err != nil {
			return err
		}
		for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP16, precision.FP8} {
			for _, withBias := range []bool{false, true} {
				dl := &devLayer{}
				if withBias {
					dl.bias = bias
				}
				var want [9]uint64
				var wantMode gemmMode
				var wantVec bool
				for i, r := range rows {
					g, err := d.plan(planKey{p: p, rows: r, n: n, k: k, bias: withBias}, dl)
					if err != nil {
						return err
					}
					algo, cand, err := g.lt.algo()
					if err != nil {
						return err
					}
					if cand < 0 {
						t.Errorf("%s bias %v, %d rows: not a batch-invariant plan", p, withBias, r)
					}
					if i == 0 {
						want, wantMode, wantVec = algo, g.mode, g.bVec
						continue
					}
					if algo != want {
						t.Errorf("%s bias %v: %d rows run algorithm %x; %d rows %x", p, withBias, r, algo, rows[0], want)
					}
					if g.mode != wantMode || g.bVec != wantVec {
						t.Errorf("%s bias %v: %d rows plan mode %d (outer-vector scales %v); %d rows %d (%v)",
							p, withBias, r, g.mode, g.bVec, rows[0], wantMode, wantVec)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDefaultPlansFollowRows: without BatchInvariant each row count gets
// the heuristic's own algorithm (no reference candidate). On the
// emulator the algorithms differ between 1 and 128 rows, which is what
// makes TestInvariantPlans able to fail there.
func TestDefaultPlansFollowRows(t *testing.T) {
	b := newTestBackend(t, Config{})
	err := b.do(context.Background(), func(d *devState) error {
		var algos [][9]uint64
		for _, r := range []int{1, 128} {
			g, err := d.plan(planKey{p: precision.BF16, rows: r, n: 256, k: 512}, &devLayer{})
			if err != nil {
				return err
			}
			algo, cand, err := g.lt.algo()
			if err != nil {
				return err
			}
			if cand != -1 {
				t.Errorf("%d rows: reference candidate %d; want -1", r, cand)
			}
			algos = append(algos, algo)
		}
		if algos[0] == algos[1] {
			t.Logf("1 and 128 rows run the same algorithm here")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPlanEviction: past maxPlans plans a device frees the least recently
// used half, so a plan in steady use (a batch size every step takes) is
// kept while a stream of new sizes comes and goes.
func TestPlanEviction(t *testing.T) {
	b := newTestBackend(t, Config{})
	err := b.do(context.Background(), func(d *devState) error {
		key := func(rows int) planKey { return planKey{p: precision.BF16, rows: rows, n: 64, k: 64} }
		hot, err := d.plan(key(1), &devLayer{})
		if err != nil {
			return err
		}
		for rows := 2; rows < maxPlans+maxPlans/4; rows++ {
			if _, err := d.plan(key(rows), &devLayer{}); err != nil {
				return err
			}
			if n := len(d.plans); n > maxPlans {
				t.Fatalf("%d plans cached after %d rows, want at most %d", n, rows, maxPlans)
			}
			if rows%64 == 0 { // the hot size, used again now and then
				if g, err := d.plan(key(1), &devLayer{}); err != nil || g != hot {
					t.Fatalf("after %d rows the plan of 1 row was rebuilt (err %v)", rows, err)
				}
			}
		}
		if _, ok := d.plans[key(2)]; ok {
			t.Errorf("the plan of 2 rows, used once at the start, was kept")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrefillAttentionInfo: prompts attend on gbx_attn_prefill by default
// (compute capability 8.0 and up), and the device's info says so; not with
// NoPrefillAttention, nor with BatchInvariant; in its warpgroup form on 9.0.
func TestPrefillAttentionInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		on   bool
	}{
		{"default", Config{}, true},
		{"off", Config{NoPrefillAttention: true}, false},
		{"batch-invariant", Config{BatchInvariant: true}, false},
	} {
		b := newTestBackend(t, tc.cfg)
		info := b.Info()
		want := tc.on && info.Major >= 8
		var got, wg bool
		if err := b.do(context.Background(), func(d *devState) error { got, wg = d.attnPrefill, d.attnPrefillForm == pfWG; return nil }); err != nil {
			t.Fatal(err)
		}
		if info.PrefillAttention != want || got != want {
			t.Errorf("%s: Info().PrefillAttention %v, the device's %v; want %v (compute capability %d.%d)", tc.name, info.PrefillAttention, got, want, info.Major, info.Minor)
		}
		// The warpgroup form where wgmma is (sm_90a), the mma.sync form elsewhere.
		if wantWG := info.Major == 9 && info.Minor == 0; wg != wantWG {
			t.Errorf("%s: warpgroup form %v on compute capability %d.%d, want %v", tc.name, wg, info.Major, info.Minor, wantWG)
		}
	}
}
