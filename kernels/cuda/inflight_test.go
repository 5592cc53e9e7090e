//go:build cgo

package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// inflightCase is one Forward of the concurrency tests.
type inflightCase struct {
	p    precision.Format
	rows int
	in   []float32
	want []float32
}

// inflightCases returns calls at every precision the device runs, at batch
// sizes that share a bucket (3, 16) and that do not (40), each with its
// own input, and their outputs from serial calls on b.
func inflightCases(t *testing.T, b *Backend, m *model.Model) []inflightCase {
	t.Helper()
	var cs []inflightCase
	for _, p := range b.Capabilities().Supported() {
		for i, rows := range []int{3, 16, 40, 3, 16} {
			in := make([]float32, rows*m.InputFeatures)
			for j := range in {
				in[j] = float32(math.Sin(float64(j*(i+2)+len(cs)))) * 2
			}
			cs = append(cs, inflightCase{p: p, rows: rows, in: in})
		}
	}
	// Serial, twice: the second time from the captured graphs.
	for range 2 {
		for i := range cs {
			out, err := b.Forward(context.Background(), m, cs[i].p, cs[i].in, cs[i].rows)
			if err != nil {
				t.Fatalf("%s rows %d: %v", cs[i].p, cs[i].rows, err)
			}
			cs[i].want = out
		}
	}
	return cs
}

// sameBits reports the first output whose bits differ from want's, or -1.
func sameBits(got, want []float32) int {
	if len(got) != len(want) {
		return 0
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return i
		}
	}
	return -1
}

// runConcurrent runs every case from each of callers goroutines, rounds
// times, and checks each output bit for bit against the serial one. A call
// may fail only with an error accepted by ok.
func runConcurrent(t *testing.T, b *Backend, m *model.Model, cs []inflightCase, callers, rounds int, ok func(error) bool) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for k := range cs {
					c := &cs[(k+g*7+r)%len(cs)] // callers in different orders
					got, err := b.Forward(context.Background(), m, c.p, c.in, c.rows)
					if err != nil {
						if ok != nil && ok(err) {
							continue
						}
						errs <- fmt.Errorf("caller %d: %s rows %d: %w", g, c.p, c.rows, err)
						return
					}
					if i := sameBits(got, c.want); i >= 0 {
						errs <- fmt.Errorf("caller %d: %s rows %d: output %d = %g, serial %g", g, c.p, c.rows, i, got[i], c.want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func inflightModel(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Synth(model.SynthConfig{Name: "inflight", Dims: []int{48, 96, 40}, Seed: 11, Norm: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestConcurrentForward checks that Forward calls from many goroutines,
// more than there are slots, give the serial calls' outputs bit for bit, at
// every precision, with one slot a bucket and with the default.
func TestConcurrentForward(t *testing.T) {
	for _, n := range []int{1, 0} {
		t.Run(fmt.Sprintf("InFlight=%d", n), func(t *testing.T) {
			b := newTestBackend(t, Config{InFlight: n})
			m := inflightModel(t)
			cs := inflightCases(t, b, m)
			runConcurrent(t, b, m, cs, 6, 2, nil)
		})
	}
}

// TestEvictInFlight evicts the model again and again while Forward calls
// run it from several goroutines: each call still gets the serial output,
// and afterwards nothing of the model is left on the device.
func TestEvictInFlight(t *testing.T) {
	b := newTestBackend(t, Config{})
	m := inflightModel(t)
	cs := inflightCases(t, b, m)
	stop := make(chan struct{})
	evicted := make(chan int)
	go func() {
		n := 0
		defer func() { evicted <- n }()
		for {
			select {
			case <-stop:
				return
			default:
				b.Evict(m)
				n++
			}
		}
	}()
	runConcurrent(t, b, m, cs, 4, 2, nil)
	close(stop)
	t.Logf("%d evictions during the calls", <-evicted)
	b.Evict(m)
	var weights, graphs int
	_ = b.do(context.Background(), func(d *devState) error {
		weights, graphs = len(d.weights), len(d.graphs)
		return nil
	})
	if weights != 0 || graphs != 0 {
		t.Errorf("after the last Evict: %d weight sets, %d graphs; want none", weights, graphs)
	}
}

// TestCloseInFlight closes the backend while Forward calls run: each call
// either gets the serial output or fails with ErrClosed, and Close returns
// once none is in flight.
func TestCloseInFlight(t *testing.T) {
	b := newTestBackend(t, Config{})
	m := inflightModel(t)
	cs := inflightCases(t, b, m)[:5] // one precision
	done := make(chan struct{})
	go func() {
		defer close(done)
		runConcurrent(t, b, m, cs, 4, 50, func(err error) bool { return errors.Is(err, ErrClosed) })
	}()
	if _, err := b.Forward(context.Background(), m, cs[0].p, cs[0].in, cs[0].rows); err != nil {
		t.Fatal(err)
	}
	b.Close()
	<-done
	if _, err := b.Forward(context.Background(), m, cs[0].p, cs[0].in, cs[0].rows); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close = %v, want ErrClosed", err)
	}
}

// TestInFlightConfig rejects a slot count out of range.
func TestInFlightConfig(t *testing.T) {
	for _, n := range []int{-1, maxInFlight + 1} {
		c := Config{InFlight: n}
		if err := c.validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("InFlight = %d: validate = %v, want ErrInvalidConfig", n, err)
		}
	}
	c := Config{}
	if err := c.validate(); err != nil || c.InFlight != InFlightDefault {
		t.Errorf("InFlight = 0: validate = %v, InFlight %d; want nil, %d", err, c.InFlight, InFlightDefault)
	}
}

// TestForwardInto: ForwardInto writes Forward's output, bit for bit, into
// the caller's slice, leaves what lies past it alone, and refuses a slice
// too short for the batch; Forward refuses bad arguments before allocating.
func TestForwardInto(t *testing.T) {
	b := newTestBackend(t, Config{})
	m := inflightModel(t)
	ctx := context.Background()
	out := make([]float32, 41*m.OutputFeatures)
	for _, c := range inflightCases(t, b, m) {
		n := c.rows * m.OutputFeatures
		for i := range out {
			out[i] = -7
		}
		if err := b.ForwardInto(ctx, m, c.p, c.in, c.rows, out); err != nil {
			t.Fatalf("%s rows %d: %v", c.p, c.rows, err)
		}
		if i := sameBits(out[:n], c.want); i >= 0 {
			t.Fatalf("%s rows %d: output %d is %g, Forward gave %g", c.p, c.rows, i, out[i], c.want[i])
		}
		if out[n] != -7 {
			t.Fatalf("%s rows %d: wrote past the batch's %d outputs", c.p, c.rows, n)
		}
	}
	if err := b.ForwardInto(ctx, m, precision.FP32, make([]float32, 3*m.InputFeatures), 3, out[:3*m.OutputFeatures-1]); err == nil {
		t.Fatal("ForwardInto with an output one value short: no error")
	}
	// Forward checks its arguments before it allocates the output: a row
	// count that does not match the input is an error, not a huge slice.
	if _, err := b.Forward(ctx, m, precision.FP32, make([]float32, 3*m.InputFeatures), 1<<40); err == nil {
		t.Fatal("Forward of 2^40 rows on 3 rows of input: no error")
	}
}
