package worker_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// TestManyJobsManyWorkers: 10,000 jobs from 3 concurrent producers, 3
// workers: exactly one stored result per job, each equal to the float64
// reference forward of its own input.
func TestManyJobsManyWorkers(t *testing.T) {
	t.Parallel()
	const jobs, producers = 10000, 3
	if testing.Short() {
		t.Skip("long: 10,000 jobs end to end")
	}
	e := setup(t, gearbox.StreamsConfig{})
	var ws []*running
	for i := range 3 {
		ws = append(ws, e.start(fmt.Sprintf("w%d", i), worker.Config{Config: batcher.Config{MaxBatchRows: 64, MaxDelay: 2 * time.Millisecond}}, nil))
	}
	sent := make([]*gearbox.Job, jobs)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			nc := connect(t, e.srv)
			c, err := gearbox.NewClient(nc)
			if err != nil {
				t.Error(err)
				return
			}
			for i := p; i < jobs; i += producers {
				j := e.job(fmt.Sprintf("job-%05d", i), 1+i%5, uint64(i))
				sent[i] = j
				if _, err := c.SubmitAsync(j); err != nil {
					t.Errorf("submit %s: %v", j.ID, err)
					return
				}
			}
			select {
			case <-c.JetStream().PublishAsyncComplete():
			case <-time.After(60 * time.Second):
				t.Error("publishes not acknowledged")
			}
		})
	}
	wg.Wait()
	rs := e.results(jobs)
	seen := map[string]bool{}
	workers := map[string]int{}
	for _, r := range rs {
		if seen[r.ID] {
			t.Fatalf("two results for %s", r.ID)
		}
		seen[r.ID] = true
		workers[r.Worker]++
		var i int
		fmt.Sscanf(r.ID, "job-%05d", &i)
		e.checkOutput(sent[i], r, 1e-5)
		if r.Precision != precision.FP32 || r.Batch == "" || r.BatchRows < sent[i].Input.Rows() {
			t.Fatalf("result %s: precision %q batch %q rows %d", r.ID, r.Precision, r.Batch, r.BatchRows)
		}
	}
	// Once every worker has stopped, no late duplicate can show up.
	for _, w := range ws {
		if err := w.stop(t); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.streamMsgs("GEARBOX_RESULTS"); n != jobs {
		t.Errorf("result stream holds %d messages; want %d", n, jobs)
	}
	if n := e.streamMsgs("GEARBOX_JOBS"); n != 0 {
		t.Errorf("job stream still holds %d jobs; want 0 (all acked)", n)
	}
	t.Logf("results per worker: %v", workers)
}

// TestKilledWorkerJobsRedelivered: a worker killed mid-batch acks nothing;
// its jobs are redelivered to another worker, and every job still has
// exactly one result.
func TestKilledWorkerJobsRedelivered(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{AckWait: time.Second})
	g := newGated(e.backend)
	victim := e.start("victim", worker.Config{Config: batcher.Config{MaxBatchRows: 8}}, g)
	const jobs = 40
	sent := map[string]*gearbox.Job{}
	for i := range jobs {
		j := e.job(fmt.Sprintf("k-%d", i), 2, uint64(i))
		sent[j.ID] = j
		if _, err := e.client.Submit(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("victim never started a batch")
	}
	victim.kill()
	survivor := e.start("survivor", worker.Config{Config: batcher.Config{MaxBatchRows: 8}}, nil)
	rs := e.results(jobs)
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.ID] {
			t.Fatalf("two results for %s", r.ID)
		}
		seen[r.ID] = true
		if r.Worker != "survivor" {
			t.Errorf("result %s from %s; the victim was killed before acking anything", r.ID, r.Worker)
		}
		e.checkOutput(sent[r.ID], r, 1e-5)
	}
	if err := survivor.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := e.streamMsgs("GEARBOX_RESULTS"); n != jobs {
		t.Errorf("result stream holds %d; want %d", n, jobs)
	}
}

// TestDuplicateJob: the same job published twice, with and without
// Nats-Msg-Id, yields one stored result.
func TestDuplicateJob(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	j := e.job("dup-1", 3, 1)
	for range 2 {
		if _, err := e.client.Submit(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	// Without Nats-Msg-Id the job stream keeps both copies: the result
	// stream's dedupe on the job id must still store one result.
	raw := e.job("dup-2", 2, 2)
	data, _ := gearbox.Msgpack.Marshal(raw)
	for range 2 {
		if _, err := e.js.Publish(context.Background(), "gearbox.jobs.mlp", data); err != nil {
			t.Fatal(err)
		}
	}
	w := e.start("w", worker.Config{}, nil)
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := e.streamMsgs("GEARBOX_JOBS"); n != 0 {
			return fmt.Errorf("%d jobs left", n)
		}
		return nil
	})
	if err := w.stop(t); err != nil { // nothing more can be published
		t.Fatal(err)
	}
	rs := e.results(2)
	if n := e.streamMsgs("GEARBOX_RESULTS"); n != 2 {
		t.Fatalf("result stream holds %d results; want 2 (one per job id): %+v", n, rs)
	}
	for _, r := range rs {
		want := j
		if r.ID == raw.ID {
			want = raw
		}
		e.checkOutput(want, r, 1e-5)
	}
}

// TestInvalidJobs: each kind of bad job gets an error result with the right
// code and a dead letter (except expired, which is acked), and the worker
// goes on serving valid jobs.
func TestInvalidJobs(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.start("w", worker.Config{MaxJobBytes: 4096}, nil)
	f := e.m.InputFeatures
	valid := func(id string) []byte {
		b, _ := gearbox.Msgpack.Marshal(e.job(id, 1, 9))
		return b
	}
	withVal := func(id string, v float32) []byte {
		j := e.job(id, 2, 3)
		vals, _ := j.Input.Values()
		vals[f+1] = v
		j.Input = gearbox.NewTensor(2, f, vals)
		b, _ := gearbox.Msgpack.Marshal(j)
		return b
	}
	jsonJob := func(s string) []byte { return []byte(s) }
	cases := []struct {
		name    string
		subject string
		data    []byte
		json    bool
		code    gearbox.Code
		dead    bool
		msg     string // substring of the error message
	}{
		{"malformed msgpack", "gearbox.jobs.mlp", []byte{0x85, 0xa2, 'i', 'd', 0xd9}, false, gearbox.CodeBadRequest, true, "malformed msgpack"},
		{"malformed json", "gearbox.jobs.mlp", []byte(`{"id": "x", "model": `), true, gearbox.CodeBadRequest, true, "malformed json"},
		{"unknown model", "gearbox.jobs.nosuch", jsonJob(`{"id":"u1","model":"nosuch","input":{"values":[1,2]}}`), true, gearbox.CodeUnknownModel, true, "nosuch"},
		{"wrong features", "gearbox.jobs.mlp", jsonJob(`{"id":"s1","model":"mlp","input":{"shape":[1,3],"values":[1,2,3]}}`), true, gearbox.CodeShapeMismatch, true, "3 input features"},
		{"nan", "gearbox.jobs.mlp", withVal("n1", float32(math.NaN())), false, gearbox.CodeBadRequest, true, "non-finite"},
		{"inf", "gearbox.jobs.mlp", withVal("i1", float32(math.Inf(-1))), false, gearbox.CodeBadRequest, true, "row 1, feature 1"},
		{"oversized", "gearbox.jobs.mlp", func() []byte { b, _ := gearbox.Msgpack.Marshal(e.job("big", 200, 1)); return b }(), false, gearbox.CodeTooLarge, true, "at most 4096"},
		{"missing id", "gearbox.jobs.mlp", jsonJob(`{"model":"mlp","input":{"values":[1]}}`), true, gearbox.CodeBadRequest, true, "no id"},
		{"model not subject", "gearbox.jobs.mlp", jsonJob(`{"id":"m1","model":"other","input":{"values":[1]}}`), true, gearbox.CodeBadRequest, true, "published to gearbox.jobs.mlp"},
		{"bad precision", "gearbox.jobs.mlp", jsonJob(`{"id":"p1","model":"mlp","precision":"int3","input":{"values":[1]}}`), true, gearbox.CodeBadRequest, true, "unknown precision"},
		{"expired", "gearbox.jobs.mlp", jsonJob(`{"id":"e1","model":"mlp","deadline":1000,"input":{"shape":[1,16],"values":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}}`), true, gearbox.CodeExpired, false, "deadline"},
	}
	ctx := context.Background()
	nresults, ndead := 0, uint64(0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := nats.NewMsg(c.subject)
			m.Data = c.data
			if c.json {
				m.Header.Set(gearbox.HeaderContentType, gearbox.ContentJSON)
			}
			if _, err := e.js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			// The next valid job is still served.
			if _, err := e.js.Publish(ctx, "gearbox.jobs.mlp", valid("after-"+c.name)); err != nil {
				t.Fatal(err)
			}
			nresults += 2
			rs := e.results(nresults)
			bad, ok := rs[nresults-2], rs[nresults-1]
			if bad.ID == "after-"+c.name {
				bad, ok = ok, bad
			}
			if bad.Error == nil || bad.Error.Code != c.code || !strings.Contains(bad.Error.Message, c.msg) {
				t.Fatalf("result %+v; want code %s mentioning %q", bad, c.code, c.msg)
			}
			if bad.Output != nil || bad.Precision != "" {
				t.Errorf("error result carries output %v / precision %q", bad.Output, bad.Precision)
			}
			if ok.Error != nil || ok.ID != "after-"+c.name {
				t.Fatalf("the next valid job got %+v", ok)
			}
			if c.dead {
				ndead++
			}
			checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if n := e.streamMsgs("GEARBOX_DEAD"); n != ndead {
					return fmt.Errorf("dead letters %d; want %d", n, ndead)
				}
				return nil
			})
			if !c.dead {
				return
			}
			dead, err := e.js.Stream(ctx, "GEARBOX_DEAD")
			if err != nil {
				t.Fatal(err)
			}
			dm, err := dead.GetLastMsgForSubject(ctx, "gearbox.dead.>")
			if err != nil {
				t.Fatal(err)
			}
			if string(dm.Data) != string(c.data) || dm.Header.Get(gearbox.HeaderErrorCode) != string(c.code) || dm.Header.Get(gearbox.HeaderError) == "" {
				t.Errorf("dead letter %s: headers %v; payload kept: %v", dm.Subject, dm.Header, string(dm.Data) == string(c.data))
			}
		})
	}
	// Nothing is left to redeliver: every bad job was terminated or acked.
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := e.streamMsgs("GEARBOX_JOBS"); n != 0 {
			return fmt.Errorf("%d jobs left in the work queue", n)
		}
		return nil
	})
}

// TestSplitJob: a job with more rows than a batch holds is split across
// batches and its output reassembled in order.
func TestSplitJob(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.start("w", worker.Config{Config: batcher.Config{MaxBatchRows: 16}}, nil)
	j := e.job("big", 101, 5)
	r, err := e.client.Do(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	e.checkOutput(j, r, 1e-5)
	if r.BatchRows > 16 {
		t.Errorf("batch_rows %d exceeds the batch limit 16", r.BatchRows)
	}
}

// TestPrecisionReported: a job runs at the precision it asks for when the
// backend can run it, and says so; a precision the backend cannot run is a
// bad_request naming what it supports; a tight max_error moves the job up
// the ladder.
func TestPrecisionReported(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.start("w", worker.Config{}, nil)
	ctx := context.Background()
	for _, p := range []precision.Format{precision.Auto, precision.FP32, precision.TF32, precision.BF16, precision.FP16, precision.FP8, precision.FP4} {
		j := e.job("p-"+string(p), 4, 1)
		j.Precision = p
		r, err := e.client.Do(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		want := p
		if p == precision.Auto {
			want = e.m.Precision.Initial
		}
		if r.Error != nil || r.Precision != want {
			t.Fatalf("asked %s: result precision %q, error %v; want %s", p, r.Precision, r.Error, want)
		}
		tol := 1e-5
		if want != precision.FP32 {
			tol = 3 * precision.ErrorBound(want) // a prior, not a promise: loose on purpose
		}
		e.checkOutput(j, r, tol)
	}
	j := e.job("tight", 2, 2)
	j.Precision, j.MaxError = precision.FP4, 1e-4
	r, err := e.client.Do(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if r.Error != nil || r.Precision != precision.FP32 {
		t.Errorf("fp4 with max_error 1e-4 ran at %q (error %v); want fp32, the only rung that meets it", r.Precision, r.Error)
	}
}

// fp32Only is the CPU backend restricted to fp32, as a device without the
// other formats would be.
type fp32Only struct{ kernels.Backend }

func (fp32Only) Capabilities() precision.Capabilities {
	return precision.Capabilities{Device: "fp32-only"}.With(precision.FP32, precision.Native)
}

// TestUnsupportedPrecision: a precision the device cannot run is a
// bad_request naming what it can, never a silent fallback.
func TestUnsupportedPrecision(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	e.start("w", worker.Config{}, fp32Only{e.backend})
	j := e.job("want-bf16", 1, 1)
	j.Precision = precision.BF16
	r, err := e.client.Do(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	if r.Error == nil || r.Error.Code != gearbox.CodeBadRequest || !strings.Contains(r.Error.Message, "supports fp32") || r.Precision != "" {
		t.Fatalf("asked bf16 of an fp32-only device: %+v; want bad_request naming fp32 and no precision", r)
	}
	j = e.job("auto", 1, 2)
	if r, err = e.client.Do(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if r.Error != nil || r.Precision != precision.FP32 {
		t.Fatalf("auto on an fp32-only device: %+v; want fp32", r)
	}
	e.checkOutput(j, r, 1e-5)
}

// TestJSONJobGetsJSONResult: a JSON job (as `nats pub` sends) is answered
// in JSON, on the result stream and on reply_to, with meta echoed.
func TestJSONJobGetsJSONResult(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{}, 2, 3)
	e.start("w", worker.Config{ReplyPrefixes: []string{"replies"}}, nil)
	nc := connect(t, e.srv)
	sub, err := nc.SubscribeSync("replies.x")
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("gearbox.jobs.mlp")
	m.Header.Set(gearbox.HeaderContentType, gearbox.ContentJSON)
	m.Data = []byte(`{"id":"j1","model":"mlp","reply_to":"replies.x","meta":{"trace":"t-1"},"input":{"shape":[2,2],"values":[1,2,3,4]}}`)
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	rm, err := sub.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if gearbox.EncodingOf(rm.Header) != gearbox.JSON || !strings.Contains(string(rm.Data), `"values":[`) {
		t.Fatalf("reply is not a JSON result with values: %s", rm.Data)
	}
	r, err := gearbox.DecodeResult(rm.Data, gearbox.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if r.Meta["trace"] != "t-1" || r.Worker != "w" || r.Output.Rows() != 2 || r.QueuedMs <= 0 || r.ComputeMs <= 0 {
		t.Errorf("result %+v", r)
	}
	j, _ := gearbox.DecodeJob(m.Data, gearbox.JSON)
	e.checkOutput(j, r, 1e-5)
}

// TestGracefulShutdown: Shutdown finishes and acks everything pulled.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	g := newGated(e.backend)
	w := e.start("w", worker.Config{Config: batcher.Config{MaxBatchRows: 4}, Prefetch: 16}, g)
	for i := range 30 {
		if _, err := e.client.Submit(context.Background(), e.job(fmt.Sprintf("g-%d", i), 1, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	<-g.entered
	done := make(chan error, 1)
	go func() { done <- w.stop(t) }()
	g.open()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after Shutdown; want nil", err)
	}
	cons, err := e.js.Consumer(context.Background(), "GEARBOX_JOBS", "gearbox-workers")
	if err != nil {
		t.Fatal(err)
	}
	// The server settles acks asynchronously: poll its view.
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := cons.Info(context.Background())
		if err != nil {
			return err
		}
		answered := e.streamMsgs("GEARBOX_RESULTS")
		left := e.streamMsgs("GEARBOX_JOBS")
		if info.NumAckPending != 0 || answered+left != 30 || answered == 0 {
			return errorf("after shutdown: %d ack pending, %d answered, %d left; want 0 pending and 30 in all", info.NumAckPending, answered, left)
		}
		return nil
	})
}

// TestConsumerDeletedBindsAgain: an operator deletes the shared consumer
// under a running worker that provisions; the worker creates it again and
// answers the jobs published after, each once.
func TestConsumerDeletedBindsAgain(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	w := e.start("w", worker.Config{Provision: true}, nil)
	ctx := context.Background()
	if _, err := e.client.Submit(ctx, e.job("before", 1, 1)); err != nil {
		t.Fatal(err)
	}
	e.results(1)
	if err := e.js.DeleteConsumer(ctx, "GEARBOX_JOBS", "gearbox-workers"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := e.client.Submit(ctx, e.job(fmt.Sprintf("after-%d", i), 1, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	rs := e.results(6)
	if err := w.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := e.streamMsgs("GEARBOX_RESULTS"); n != 6 || len(rs) != 6 {
		t.Errorf("%d results stored; want 6", n)
	}
}

// TestSlowBatchNotRedelivered: a batch that takes longer than AckWait is
// kept alive with InProgress, so it is not redelivered or answered twice.
func TestSlowBatchNotRedelivered(t *testing.T) {
	e := setup(t, gearbox.StreamsConfig{AckWait: time.Second})
	g := newGated(e.backend)
	slow := e.start("slow", worker.Config{}, g)
	j := e.job("slow-1", 1, 1)
	if _, err := e.client.Submit(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	// The subject of this test is time: the batch computes for 2.5 ×
	// AckWait, on a real server's clock.
	time.Sleep(2500 * time.Millisecond)
	g.open()
	rs := e.results(1)
	if err := slow.stop(t); err != nil {
		t.Fatal(err)
	}
	cons, _ := e.js.Consumer(context.Background(), "GEARBOX_JOBS", "gearbox-workers")
	info, _ := cons.Info(context.Background())
	if info.NumRedelivered != 0 || e.streamMsgs("GEARBOX_RESULTS") != 1 || rs[0].Worker != "slow" {
		t.Errorf("redelivered %d, results %d, answered by %s; want 0, 1, slow", info.NumRedelivered, e.streamMsgs("GEARBOX_RESULTS"), rs[0].Worker)
	}
}

// TestJobPastMaxDeliveries: a job delivered more often than the backstop
// (giveUpFactor × MaxDeliver) without being answered — workers died
// holding it — is answered with an internal error and dead-lettered without
// running, instead of sitting in the work queue forever. Fewer deliveries
// held by dead workers cost it nothing: it runs (alone) and succeeds.
func TestJobPastMaxDeliveries(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{AckWait: time.Second, MaxDeliver: 1})
	ctx := context.Background()
	for _, id := range []string{"held", "doomed"} {
		if _, err := e.client.Submit(ctx, e.job(id, 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// Deliveries that are never answered, as if workers died holding them:
	// "held" 2 of them, "doomed" 4 (the backstop for MaxDeliver 1).
	cons, err := e.js.Consumer(ctx, "GEARBOX_JOBS", "gearbox-workers")
	if err != nil {
		t.Fatal(err)
	}
	deliveries := map[string]int{}
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		b, err := cons.Fetch(2, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		for m := range b.Messages() {
			j, _ := gearbox.DecodeJob(m.Data(), gearbox.Msgpack)
			deliveries[j.ID]++
			if deliveries[j.ID] == map[string]int{"held": 2, "doomed": 4}[j.ID] {
				_ = m.NakWithDelay(3 * time.Second) // the next delivery is the worker's
				continue
			}
			_ = m.Nak()
		}
		if deliveries["held"] < 2 || deliveries["doomed"] < 4 {
			return errorf("deliveries %v", deliveries)
		}
		return nil
	})
	e.start("w", worker.Config{Streams: e.streams}, nil)
	rs := e.results(2)
	byID := map[string]*gearbox.Result{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	if r := byID["held"]; r == nil || r.Error != nil {
		t.Errorf("held: result %+v; want success", r)
	}
	if r := byID["doomed"]; r == nil || r.Error == nil || r.Error.Code != gearbox.CodeInternal || !strings.Contains(r.Error.Message, "never answered") {
		t.Fatalf("doomed: result %+v; want an internal error saying it was never answered", r)
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if d, q := e.streamMsgs("GEARBOX_DEAD"), e.streamMsgs("GEARBOX_JOBS"); d != 1 || q != 0 {
			return errorf("dead letters %d, jobs left %d; want 1 and 0", d, q)
		}
		return nil
	})
}

// TestAdmissionKeepsPullOrder: jobs decoded in parallel (Codecs 4, jobs of
// 1 to 64 rows, so their decodes take unequal times) still reach the
// batcher in the order they were pulled: a job published later never runs
// in an earlier batch than one published before it at the same priority.
func TestAdmissionKeepsPullOrder(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	const n = 120
	jobs := map[string]int{}
	for i := range n {
		id := fmt.Sprintf("o-%03d", i)
		jobs[id] = i
		if _, err := e.client.SubmitAsync(e.job(id, 1+(i*37)%64, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	<-e.js.PublishAsyncComplete()
	e.start("w", worker.Config{Codecs: 4, Config: batcher.Config{MaxBatchRows: 32}}, nil)
	batchOf := make([]int, n)
	for _, r := range e.results(n) {
		if r.Error != nil {
			t.Fatalf("job %s: %s", r.ID, r.Error.Message)
		}
		b, err := strconv.Atoi(strings.TrimPrefix(r.Batch, "w-"))
		if err != nil {
			t.Fatalf("job %s: batch %q is not w-<n>", r.ID, r.Batch)
		}
		batchOf[jobs[r.ID]] = b
	}
	for i := 1; i < n; i++ {
		if batchOf[i] < batchOf[i-1] {
			t.Errorf("job o-%03d ran first in batch %d, before job o-%03d's batch %d", i, batchOf[i], i-1, batchOf[i-1])
		}
	}
}
