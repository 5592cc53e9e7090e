package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// With RawStreams 3 the raw side spreads the jobs over three lanes: job i
// goes through lane i mod 3 only, exactly once, its result is stored once
// in that lane's result stream under the job's id, every job is acked and
// no lane's consumer holds anything afterwards. The workers' own streams
// carry none of it.
func TestRawStreams(t *testing.T) {
	ctx := context.Background()
	b := setup(t, Config{
		Dims: []int{16, 32, 8}, RowsPerJob: 3, Jobs: 50, Workers: 2, Raw: true, RawStreams: 3, Timeout: time.Minute,
		Worker: worker.Config{Config: batcher.Config{MaxBatchRows: 32, MaxDelay: 50 * time.Millisecond}},
	})
	cfg := b.cfg
	if len(b.lanes) != 3 || cfg.rawConsumers() != 3 {
		t.Fatalf("%d lanes, %d consumers; want 3 and max(2 workers, 3 streams) = 3", len(b.lanes), cfg.rawConsumers())
	}
	r, err := b.rawLanes(ctx, b.lanes, cfg.rawConsumers(), precision.BF16, "t", cfg.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	if r.jobs != cfg.Jobs || r.acked != cfg.Jobs {
		t.Errorf("run of %d jobs, %d acked; want %d, all acked once", r.jobs, r.acked, cfg.Jobs)
	}
	for i, l := range b.lanes {
		lb := *b
		lb.client, lb.subj = l.client, l.subj
		sizes := resultSizes(t, &lb)
		want := 0
		for j := i; j < cfg.Jobs; j += len(b.lanes) {
			want++
			if _, ok := sizes["bf16-t-"+strconv.Itoa(j)]; !ok {
				t.Errorf("lane %d: no result for job %d", i, j)
			}
		}
		if len(sizes) != want {
			t.Errorf("lane %d: %d results; want %d (jobs %d, %d+3, …)", i, len(sizes), want, i, i)
		}
		cons, err := l.client.JetStream().Consumer(ctx, l.subj.JobsStream(), l.subj.Consumer())
		if err != nil {
			t.Fatal(err)
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumRedelivered != 0 || ci.NumAckPending != 0 || ci.NumPending != 0 || ci.Delivered.Consumer != uint64(want) || ci.AckFloor.Consumer != ci.Delivered.Consumer {
			t.Errorf("lane %d consumer: %d redelivered, %d unacked, %d pending, %d delivered, ack floor %d; want 0, 0, 0, %d, all acked",
				i, ci.NumRedelivered, ci.NumAckPending, ci.NumPending, ci.Delivered.Consumer, ci.AckFloor.Consumer, want)
		}
	}
	for _, stream := range []string{b.subj.JobsStream(), b.subj.ResultsStream()} {
		if n := eachStored(t, b, stream, func(*jetstream.RawStreamMsg) {}); n != 0 {
			t.Errorf("the workers' %s holds %d messages; want none", stream, n)
		}
	}
}

// Run reports the raw side over several streams next to the one-stream
// raw side; RawStreams above 1 needs the raw side.
func TestRunRawStreams(t *testing.T) {
	be, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	rep, err := Run(context.Background(), Config{
		Backend: be, Dims: []int{16, 32, 8}, Precisions: []precision.Format{precision.FP32},
		RowsPerJob: 3, Jobs: 30, Reps: 1, Raw: true, RawStreams: 2, Timeout: time.Minute, MinTime: time.Millisecond,
		Worker: worker.Config{Config: batcher.Config{MaxBatchRows: 32, MaxDelay: 50 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RawStreams != 2 || rep.RawStreamsConsumers != 2 {
		t.Errorf("report: %d raw streams, %d consumers; want 2 and 2", rep.RawStreams, rep.RawStreamsConsumers)
	}
	if r := rep.Results[0]; r.Raw == nil || r.RawStreams == nil || r.RawStreams.JobsPerSec <= 0 || len(r.RawStreams.Runs) != 1 {
		t.Errorf("result %+v; want the one-stream and the two-stream raw sides", r)
	}
	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{"raw×2 jobs/s", "raw×2/raw", "2 job streams and 2 result streams, 2 consumers"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := Run(context.Background(), Config{Backend: be, RawStreams: 2}); err == nil {
		t.Error("Run with RawStreams 2 and no raw side succeeded; want an error")
	}
}
