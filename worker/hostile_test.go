package worker_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/internal/embedded"
	"github.com/gearbox-inference/gearbox/internal/logtest"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// The tests in this file play a hostile or careless producer (and a
// hostile environment) against a real server: each guards a defect that
// once let one job destroy the queue, crash workers or lose other jobs.

// TestReplyToCannotReachSystemSubjects: reply_to is a producer's way to make
// a worker publish with its own permissions. Replies may go only under the
// allowed prefixes (inboxes by default), never to JetStream's API (a purge
// of the job stream), a bucket, or Gearbox's own subjects; a refused
// reply_to is a bad_request, and nothing is sent there.
func TestReplyToCannotReachSystemSubjects(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	ctx := context.Background()
	hostile := []string{
		"$JS.API.STREAM.PURGE.GEARBOX_JOBS",
		"$JS.API.STREAM.PURGE.GEARBOX_RESULTS",
		"$KV.gearbox_policy.mlp",
		"$O.gearbox_models.C.x",
		"$SYS.REQ.SERVER.PING",
		"gearbox.results.mlp",
		"gearbox.jobs.mlp",
		"elsewhere.x",
	}
	spy := connect(t, e.srv)
	var subs []*nats.Subscription
	for _, s := range hostile {
		sub, err := spy.SubscribeSync(s)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	inbox, err := spy.SubscribeSync("_INBOX.ok")
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil { // the subscriptions are in place
		t.Fatal(err)
	}
	// The hostile jobs come first, then valid ones the worker has not
	// pulled yet (one job per pull): a purge would delete those.
	for i, s := range hostile {
		j := e.job(fmt.Sprintf("hostile-%d", i), 1, 1)
		j.ReplyTo = s
		if _, err := e.client.Submit(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	ok := e.job("ok", 1, 2)
	ok.ReplyTo = "_INBOX.ok"
	const valid = 20
	for i := range valid {
		j := e.job(fmt.Sprintf("valid-%d", i), 1, uint64(i))
		if i == 0 {
			j = ok
		}
		if _, err := e.client.Submit(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	e.start("w", worker.Config{Prefetch: 1, Config: batcher.Config{MaxBatchRows: 1}}, nil)
	rs := e.results(len(hostile) + valid)
	for _, r := range rs {
		switch {
		case strings.HasPrefix(r.ID, "hostile-"):
			if r.Error == nil || r.Error.Code != gearbox.CodeBadRequest || !strings.Contains(r.Error.Message, "reply_to") || !strings.Contains(r.Error.Message, "_INBOX.") {
				t.Errorf("%s: result %+v; want bad_request naming reply_to and the allowed prefix", r.ID, r.Error)
			}
		case r.Error != nil:
			t.Errorf("%s: %v", r.ID, r.Error)
		}
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := e.streamMsgs("GEARBOX_JOBS"); n != 0 {
			return fmt.Errorf("%d jobs left", n)
		}
		if n := e.streamMsgs("GEARBOX_DEAD"); n != uint64(len(hostile)) {
			return fmt.Errorf("%d dead letters; want %d", n, len(hostile))
		}
		return nil
	})
	if _, err := inbox.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no reply on the allowed inbox: %v", err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	// The spy sees the jobs and results the test and the worker publish as
	// they should; a reply there would be one more.
	want := map[string]int{"gearbox.results.mlp": len(hostile) + valid, "gearbox.jobs.mlp": len(hostile) + valid}
	for i, sub := range subs {
		if n, _, _ := sub.Pending(); n != want[hostile[i]] {
			t.Errorf("%d message(s) were published to %s; want %d", n, hostile[i], want[hostile[i]])
		}
	}
	if n := e.streamMsgs("GEARBOX_RESULTS"); n != uint64(len(hostile)+valid) {
		t.Errorf("result stream holds %d results; want %d", n, len(hostile)+valid)
	}
}

// TestJobSubjectTokens: jobs are accepted on exactly one model token. The
// stream takes only <prefix>.jobs.<token>; a literal wildcard token is
// answered as a bad_request under the stand-in token _invalid, never on a
// wildcard result subject.
func TestJobSubjectTokens(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	ctx := context.Background()
	data, _ := gearbox.Msgpack.Marshal(e.job("deep", 1, 1))
	if _, err := e.js.Publish(ctx, "gearbox.jobs.x.y.mlp", data); err == nil {
		t.Errorf("a job on gearbox.jobs.x.y.mlp was stored; want no stream to take it")
	}
	for i, subj := range []string{"gearbox.jobs.*", "gearbox.jobs.>"} {
		j := e.job(fmt.Sprintf("wild-%d", i), 1, 1)
		j.Model = subj[len("gearbox.jobs."):]
		data, _ := gearbox.Msgpack.Marshal(j)
		if _, err := e.js.Publish(ctx, subj, data); err != nil {
			t.Fatal(err)
		}
	}
	e.start("w", worker.Config{}, nil)
	rs := e.results(2)
	for _, r := range rs {
		if r.Error == nil || r.Error.Code != gearbox.CodeBadRequest || !strings.Contains(r.Error.Message, "model") {
			t.Errorf("%s: %+v; want a bad_request about the model token", r.ID, r.Error)
		}
	}
	results, err := e.js.Stream(ctx, "GEARBOX_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := results.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 1 || info.State.Subjects["gearbox.results._invalid"] != 2 {
		t.Errorf("results stored under %v; want both under gearbox.results._invalid", info.State.Subjects)
	}
}

// TestHugeIDAnsweredUnderSequence: a job whose 4 MiB id breaks the
// contract is answered (under its stream sequence, never its raw id) and
// dead-lettered on its first delivery, and the worker logs a bounded
// amount about it. It once produced a result and Nats-Msg-Id over the
// server's max payload, on every delivery, and 42 MB of log.
func TestHugeIDAnsweredUnderSequence(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	var logs logtest.Buffer
	l := zerolog.New(&logs).Level(zerolog.DebugLevel)
	e.start("w", worker.Config{Logger: &l}, nil)
	j := e.job("x", 1, 1)
	j.ID = strings.Repeat("i", 4<<20)
	j.Meta = map[string]string{"note": strings.Repeat("m", 1<<20)}
	data, err := gearbox.Msgpack.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	// 5 MiB into file storage on a loaded 2-core machine under -race can
	// outlast the client's default 5 s publish timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.js.Publish(ctx, "gearbox.jobs.mlp", data); err != nil {
		t.Fatal(err)
	}
	rs := e.results(1)
	r := rs[0]
	if r.ID != "" || r.Error == nil || r.Error.Code != gearbox.CodeBadRequest || !strings.Contains(r.Error.Message, "id is 4194304 bytes; at most 128") {
		t.Fatalf("result id %.40q error %v; want no id and a bad_request on the id's size", r.ID, r.Error)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if d, q := e.streamMsgs("GEARBOX_DEAD"), e.streamMsgs("GEARBOX_JOBS"); d != 1 || q != 0 {
			return errorf("dead letters %d, jobs left %d; want 1, 0", d, q)
		}
		return nil
	})
	if n := logs.Len(); n > 16<<10 {
		t.Errorf("the worker logged %d bytes about one job; want a bounded amount", n)
	}
}

// killer is a backend on which a batch holding the poison value kills its
// worker the way a crash would: the worker stops at once, its connection
// closes, and nothing it held is acked.
type killer struct {
	kernels.Backend
	kill func()
}

const poisonValue = 12345

func (k *killer) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	for _, v := range in {
		if v == poisonValue {
			go k.kill()
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}
	return k.Backend.Forward(ctx, m, p, in, rows)
}

// TestPoisonJobCostsNothingElse: one job that kills every worker computing
// it, among 50 good ones, with two supervised workers (restarted when they
// die, as Kubernetes would): the poison job ends as a dead letter after a
// bounded number of deaths, and every good job gets its result. Before,
// each death counted against every job the dead worker held, so good jobs
// ran out of deliveries and were lost or failed with it.
func TestPoisonJobCostsNothingElse(t *testing.T) {
	t.Parallel()
	streams := gearbox.StreamsConfig{AckWait: time.Second}
	e := setup(t, streams)
	ctx := context.Background()
	const good = 50
	for i := range good + 1 {
		j := e.job(fmt.Sprintf("job-%02d", i), 1, uint64(i))
		if i == good/2 {
			j.ID = "poison"
			vals, _ := j.Input.Values()
			vals[0] = poisonValue
			j.Input = gearbox.NewTensor(1, e.m.InputFeatures, vals)
		}
		if _, err := e.client.Submit(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	var deaths sync.Map
	stop := make(chan struct{})
	var supervisors sync.WaitGroup
	for i := range 2 {
		supervisors.Go(func() {
			for life := 0; ; life++ {
				var r *running
				started := make(chan struct{})
				k := &killer{Backend: e.backend, kill: func() { <-started; r.kill() }}
				r = e.start(fmt.Sprintf("w%d-%d", i, life), worker.Config{Streams: streams, Config: batcher.Config{MaxBatchRows: 8}}, k)
				close(started)
				select {
				case <-r.done:
					deaths.Store(r.w.Name(), true)
				case <-stop:
					return
				}
			}
		})
	}
	rs := e.results(good + 1)
	close(stop)
	for _, r := range rs {
		if r.ID == "poison" {
			if r.Error == nil || r.Error.Code != gearbox.CodeInternal || !strings.Contains(r.Error.Message, "died") {
				t.Errorf("poison: %+v; want an internal error saying workers died on it", r.Error)
			}
			continue
		}
		if r.Error != nil {
			t.Errorf("%s: %v; want a result", r.ID, r.Error)
		}
	}
	n := 0
	deaths.Range(func(any, any) bool { n++; return true })
	// One death in its first batch, then one per isolated attempt.
	if n > 3 {
		t.Errorf("%d workers died; want at most 3", n)
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if d, q := e.streamMsgs("GEARBOX_DEAD"), e.streamMsgs("GEARBOX_JOBS"); d != 1 || q != 0 {
			return errorf("dead letters %d, jobs left %d; want 1, 0", d, q)
		}
		return nil
	})
	supervisors.Wait()
}

// TestMemoryBoundedInBytes: a worker holds a bounded number of large jobs
// however many are queued: pulls are capped in bytes, and the batcher's
// bound counts bytes as well as rows. Before, a worker pulled up to 512
// jobs whatever their size (100 jobs of 7 MB: 950 MB).
func TestMemoryBoundedInBytes(t *testing.T) {
	e := setup(t, gearbox.StreamsConfig{}, 65536, 8) // a row is 256 KiB
	g := newGated(e.backend)
	defer g.open()
	const mib = 1 << 20
	e.start("w", worker.Config{MaxJobBytes: 2 * mib, PrefetchBytes: 2 * mib, Config: batcher.Config{MaxQueuedBytes: 4 * mib}}, g)
	ctx := context.Background()
	const jobs = 40
	for i := range jobs {
		if _, err := e.client.SubmitAsync(e.job(fmt.Sprintf("big-%d", i), 4, uint64(i))); err != nil { // 1 MiB
			t.Fatal(err)
		}
	}
	<-e.client.JetStream().PublishAsyncComplete()
	<-g.entered // the first batch is computing and holds its jobs
	cons, err := e.js.Consumer(ctx, "GEARBOX_JOBS", "gearbox-workers")
	if err != nil {
		t.Fatal(err)
	}
	// Give the worker time to pull everything it would; the bound must
	// hold however long it waits.
	time.Sleep(time.Second)
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The computing batch and the batcher's queue hold up to 4 MiB each,
	// plus one job over each bound; the client's buffer up to two pulls of
	// 2 MiB.
	if held := info.NumAckPending; held > 15 {
		t.Errorf("the worker holds %d jobs of 1 MiB; want at most 15", held)
	}
	g.open()
	if rs := e.results(jobs); len(rs) != jobs {
		t.Fatalf("%d results; want %d", len(rs), jobs)
	}
}

// TestResultStreamOutageRetriesInParallel: while the result stream is
// gone, every job's answer retries on its own (they do not queue behind
// one another's retries, which once took throughput to one job per 2.5 s),
// and all are answered once it is back.
func TestResultStreamOutageRetriesInParallel(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	ctx := context.Background()
	met := worker.NewMetrics(prometheus.NewRegistry())
	e.start("w", worker.Config{Metrics: met}, nil)
	if err := e.js.DeleteStream(ctx, "GEARBOX_RESULTS"); err != nil {
		t.Fatal(err)
	}
	const jobs = 20
	for i := range jobs {
		if _, err := e.client.Submit(ctx, e.job(fmt.Sprintf("j%d", i), 1, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if n := testutil.ToFloat64(met.AnswersRetrying()); n < jobs/2 {
			return errorf("%v answers retrying at once; want at least %d", n, jobs/2)
		}
		return nil
	})
	if err := e.client.Provision(ctx, e.streams); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range e.results(jobs) {
		if r.Error != nil || seen[r.ID] {
			t.Errorf("%s: error %v, seen before %v", r.ID, r.Error, seen[r.ID])
		}
		seen[r.ID] = true
	}
}

// TestWorkerStartsBeforeNATS: a worker started while NATS is down waits,
// reporting not ready, and serves once the server is up (under Kubernetes,
// exiting would be a crash loop).
func TestWorkerStartsBeforeNATS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	nc, err := nats.Connect("nats://"+addr, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m, _ := model.Synth(model.SynthConfig{Name: "mlp", Dims: []int{16, 8}, Seed: 1})
	backend, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(nc, backend, worker.NewModels(m), worker.Config{Name: "early", Provision: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	if err := w.Ready(); err == nil {
		t.Fatal("Ready() = nil with no server; want why not")
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with NATS down; want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	srv, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error { return w.Ready() })
	c, err := gearbox.NewClient(connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 16)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	r, err := c.Do(rctx, &gearbox.Job{ID: "late", Model: "mlp", Input: gearbox.NewTensor(1, 16, in)})
	if err != nil || r.Error != nil {
		t.Fatalf("job after the server came up: %v %v", err, r)
	}
}
