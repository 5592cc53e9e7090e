package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// The end-to-end benchmarks publish b.N one-row jobs for a 64→256→10 model
// and wait for b.N results in the result stream. BenchmarkRawJetStream moves
// the same messages (job payload in, result payload out, ack after the
// result is stored) through the same server with no batching and no
// inference: the ceiling the worker is measured against.
//
//	go test -run '^$' -bench '^Benchmark(EndToEnd|RawJetStream)$' -benchtime 20000x -count 5 ./worker/

func BenchmarkEndToEnd(b *testing.B) { endToEnd(b, worker.Config{}) }

// BenchmarkEndToEndWide is the payload-bound case: 16-row jobs of 1,024
// features (64 KiB in, 64 KiB out as f32) for a 1024→4→1024 model whose
// compute is negligible, so the worker's per-byte costs show; with the
// payload in f32, with bf16 results (output_dtype), and with bf16 inputs
// too (32 KiB each way). The jobs are published first; the clock runs
// from the worker's start to the last result read.
//
//	go test -run '^$' -bench EndToEndWide -benchtime 3000x -count 5 ./worker/
func BenchmarkEndToEndWide(b *testing.B) {
	for _, c := range []struct {
		name    string
		in, out gearbox.DType
	}{{"f32", gearbox.F32, gearbox.F32}, {"out=bf16", gearbox.F32, gearbox.BF16}, {"in+out=bf16", gearbox.BF16, gearbox.BF16}} {
		b.Run(c.name, func(b *testing.B) {
			e := setup(b, gearbox.StreamsConfig{}, 1024, 4, 1024)
			for i := range b.N {
				j := e.job(fmt.Sprintf("w-%d", i), 16, uint64(i))
				if c.in != gearbox.F32 {
					vals, _ := j.Input.Values()
					j.Input = gearbox.NewTensorAs(16, 1024, vals, c.in)
				}
				j.OutputDType = c.out
				for {
					if _, err := e.client.SubmitAsync(j); err == nil {
						break
					}
					<-e.js.PublishAsyncComplete()
				}
			}
			<-e.js.PublishAsyncComplete()
			b.ResetTimer()
			start := time.Now()
			e.start("bench", worker.Config{}, nil)
			e.results(b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}

// BenchmarkEndToEndWorkers is the payload-bound case of
// BenchmarkEndToEndWide (f32) with 1 and 2 workers in one process, the
// workers sharing one connection or each on its own: what a second worker
// buys, and what a shared nats.Conn (one reader goroutine, one flusher,
// one mutex for every publish and ack) costs. On a 2-core machine the
// server, the producer and the workers share the cores, so read it for
// the shared-vs-own difference, not for scaling.
//
//	go test -run '^$' -bench EndToEndWorkers -benchtime 2000x -count 5 ./worker/
func BenchmarkEndToEndWorkers(b *testing.B) {
	for _, c := range []struct {
		workers int
		shared  bool
	}{{1, false}, {2, true}, {2, false}} {
		conn := "own"
		if c.shared {
			conn = "shared"
		}
		b.Run(fmt.Sprintf("workers=%d/conn=%s", c.workers, conn), func(b *testing.B) {
			e := setup(b, gearbox.StreamsConfig{}, 1024, 4, 1024)
			for i := range b.N {
				for {
					if _, err := e.client.SubmitAsync(e.job(fmt.Sprintf("w-%d", i), 16, uint64(i))); err == nil {
						break
					}
					<-e.js.PublishAsyncComplete()
				}
			}
			<-e.js.PublishAsyncComplete()
			b.ResetTimer()
			start := time.Now()
			nc := connect(b, e.srv)
			for i := range c.workers {
				if !c.shared && i > 0 {
					nc = connect(b, e.srv)
				}
				e.startOn(nc, fmt.Sprintf("bench-%d", i), worker.Config{}, nil)
			}
			e.results(b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}

// BenchmarkSampling measures what the quality loop costs: the same load with
// sampling off and at the default 2 % of batches (plus the controller), run
// side by side. Batches are capped at 16 rows so there are many of them
// (about 1,250 per 20,000 jobs) and so many checks; "reports" counts them.
//
//	go test -run '^$' -bench Sampling -benchtime 20000x -count 5 ./worker/
func BenchmarkSampling(b *testing.B) {
	for _, sample := range []float64{0, 0.02} {
		b.Run(fmt.Sprintf("sample=%g", sample), func(b *testing.B) {
			endToEnd(b, worker.Config{Config: batcher.Config{MaxBatchRows: 16}, Quality: quality.Config{Sample: sample, Control: sample > 0}})
		})
	}
}

// BenchmarkEndToEndDevice is BenchmarkEndToEnd on a device whose every
// Forward takes 20 ms more than the CPU's (deviceTime), as a GPU's does
// while the host is free: the host's work around one batch (gathering,
// scattering, encoding, publishing) either overlaps another batch's
// compute or adds to it.
//
//	go test -run '^$' -bench EndToEndDevice -benchtime 20000x -count 5 ./worker/
func BenchmarkEndToEndDevice(b *testing.B) {
	e := setup(b, gearbox.StreamsConfig{}, 64, 256, 10)
	endToEndOn(b, e, worker.Config{}, deviceTime{e.backend, 20 * time.Millisecond})
}

// deviceTime is a backend whose Forward waits d, then computes: the wait
// stands for a device computing while the host's cores are free.
type deviceTime struct {
	kernels.Backend
	d time.Duration
}

func (b deviceTime) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	time.Sleep(b.d)
	return b.Backend.Forward(ctx, m, p, in, rows)
}

func endToEnd(b *testing.B, cfg worker.Config) {
	endToEndOn(b, setup(b, gearbox.StreamsConfig{}, 64, 256, 10), cfg, nil)
}

func endToEndOn(b *testing.B, e *env, cfg worker.Config, backend kernels.Backend) {
	e.start("bench", cfg, backend)
	if cfg.Quality.Enabled() {
		defer func() { b.ReportMetric(float64(e.streamMsgs("GEARBOX_QUALITY")), "reports") }()
	}
	jobs := make([]*gearbox.Job, b.N)
	for i := range jobs {
		jobs[i] = e.job(fmt.Sprintf("b-%d", i), 1, uint64(i))
	}
	b.ResetTimer()
	start := time.Now()
	go func() {
		for _, j := range jobs {
			for {
				if _, err := e.client.SubmitAsync(j); err == nil {
					break
				}
				<-e.js.PublishAsyncComplete()
			}
		}
	}()
	rows := 0
	for _, r := range e.results(b.N) {
		rows += r.BatchRows
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	b.ReportMetric(float64(rows)/float64(b.N), "batch_rows/job")
}

func BenchmarkRawJetStream(b *testing.B) {
	e := setup(b, gearbox.StreamsConfig{}, 64, 256, 10)
	job, _ := gearbox.Msgpack.Marshal(e.job("b-0", 1, 1))
	out := gearbox.NewTensor(1, 10, make([]float32, 10))
	result, _ := gearbox.Msgpack.Marshal(&gearbox.Result{ID: "b-0", Model: "mlp", Output: &out, Precision: "fp32", Worker: "bench", Batch: "bench-1", BatchRows: 1})

	// The "worker": pull, publish the result payload with a msg id, ack
	// once it is stored.
	nc := connect(b, e.srv)
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	cons, err := js.Consumer(context.Background(), "GEARBOX_JOBS", "gearbox-workers")
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	type pend struct {
		f   jetstream.PubAckFuture
		msg jetstream.Msg
	}
	pending := make(chan pend, 4096)
	go func() {
		for p := range pending {
			select {
			case <-p.f.Ok():
				p.msg.Ack()
			case err := <-p.f.Err():
				b.Error(err)
			}
		}
	}()
	go func() {
		defer close(pending)
		for i := 0; ; i++ {
			msg, err := it.Next()
			if err != nil {
				return
			}
			m := nats.NewMsg("gearbox.results.mlp")
			m.Data = result
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("r-%d", i))
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				b.Error(err)
				return
			}
			pending <- pend{f, msg}
		}
	}()

	b.ResetTimer()
	start := time.Now()
	go func() {
		for i := 0; i < b.N; i++ {
			m := nats.NewMsg("gearbox.jobs.mlp")
			m.Data = job
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("b-%d", i))
			for {
				if _, err := e.js.PublishMsgAsync(m); err == nil {
					break
				}
				<-e.js.PublishAsyncComplete()
			}
		}
	}()
	e.results(b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
