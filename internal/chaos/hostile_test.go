package chaos_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/chaos"
	"github.com/gearbox-inference/gearbox/model"
)

// maxWorkerRSS bounds a worker process's peak RSS through the hostile
// corpus. At the defaults a worker may hold up to GEARBOX_MAX_QUEUED_BYTES
// (256 MiB) of queued jobs plus its pull buffer (32 MiB); the corpus's
// bombs declare gigabytes, and before the bounded decoder one of them took
// 17 GB.
const maxWorkerRSS = 512 << 20

// TestHostileCorpus: the crafted jobs of testdata/hostile, each followed
// by three good jobs, and eight good jobs of 4 MiB, queued before two
// worker processes start. Every corpus job ends as its case says (a
// result with the expected code under the expected id and subject, a dead
// letter when it says so, or a refused publish), every good job is
// answered correctly, no reply goes anywhere but the allowed inbox, no
// worker process dies, and each stays under maxWorkerRSS.
func TestHostileCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("the hostile corpus drill builds and runs processes: run it without -short (task chaos)")
	}
	cases, err := chaos.LoadCorpus(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	b := binaries(t)
	dir := t.TempDir()
	// The server takes 16 MiB messages, so a job over the worker's 8 MiB
	// bound reaches the worker.
	srv, err := chaos.StartServer(b.NATSD, chaos.ServerConfig{Name: "n0", Dir: filepath.Join(dir, "nats"), MaxPayload: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(5 * time.Second)
	m := demoModel(t, filepath.Join(dir, "models"))
	nc := connect(t, srv.URL)
	client, err := gearbox.NewClient(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams := gearbox.StreamsConfig{}
	provision(t, client, streams)

	// Spies on every subject a hostile reply_to names that nothing else
	// publishes to, and on the inboxes good jobs ask for.
	spied := map[string]*nats.Subscription{}
	for _, s := range []string{"$JS.API.STREAM.PURGE.GEARBOX_JOBS", "$JS.API.STREAM.PURGE.GEARBOX_RESULTS", "$JS.API.STREAM.DELETE.GEARBOX_JOBS",
		"$KV.gearbox_policy.demo", "$O.gearbox_models.C.demo", "$SYS.REQ.SERVER.PING", "elsewhere.x"} {
		sub, err := nc.SubscribeSync(s)
		if err != nil {
			t.Fatal(err)
		}
		spied[s] = sub
	}
	inbox, err := nc.SubscribeSync("_INBOX.chaos.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	good := jobs(m, "good", 3*len(cases))
	big := jobs(m, "big", 8)
	for _, j := range big {
		vals, _ := good[0].Input.Values()
		big := make([]float32, 65536*m.InputFeatures) // 4 MiB: GEARBOX_MAX_JOB_ROWS rows
		for i := range big {
			big[i] = vals[i%len(vals)] * float32(1+i%5)
		}
		j.Input = gearbox.NewTensor(65536, m.InputFeatures, big)
	}
	seqs := map[string]uint64{}
	for i, c := range cases {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		ack, err := client.JetStream().PublishMsg(pctx, c.Msg())
		pcancel()
		switch {
		case c.Expect.Refused && err == nil:
			t.Errorf("%s: the job stream stored it (seq %d); want the publish refused", c.Name, ack.Sequence)
		case !c.Expect.Refused && err != nil:
			t.Fatalf("%s: publish: %v", c.Name, err)
		case err == nil:
			seqs[c.Name] = ack.Sequence
		}
		for _, j := range good[3*i : 3*i+3] {
			if _, err := client.Submit(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, j := range big {
		if _, err := client.Submit(ctx, j); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	fleet, err := chaos.StartFleet(chaos.FleetConfig{
		Gearbox: b.Gearbox, Dir: dir, Workers: 2, URL: srv.URL, Models: filepath.Join(dir, "models"), Streams: streams,
		Env: []string{"GEARBOX_QUALITY_CONTROL=false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop(5 * time.Second)
	if err := chaos.WaitDrained(ctx, client.JetStream(), client.Subjects()); err != nil {
		logTails(t, fleet.Workers...)
		t.Fatal(err)
	}
	took := time.Since(start)
	if exits := fleet.Exits(); len(exits) > 0 {
		logTails(t, fleet.Workers...)
		t.Errorf("worker processes died %d time(s): %v; want none", len(exits), exits)
	}
	for _, w := range fleet.Workers {
		rss, err := w.PeakRSS()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: peak RSS %.1f MiB", w.Name(), float64(rss)/(1<<20))
		if rss > maxWorkerRSS {
			t.Errorf("%s: peak RSS %d MiB; want at most %d MiB", w.Name(), rss>>20, maxWorkerRSS>>20)
		}
	}
	acct := settle(ctx, t, client, fleet)
	t.Logf("%d corpus jobs (%d refused by the stream) and %d good jobs answered in %v: %d results, %d dead letters",
		len(cases), len(cases)-len(seqs), len(good)+len(big), took.Round(time.Millisecond), len(acct.Results), len(acct.Dead))

	results, dead := byMsgID(acct.Results), byMsgID(acct.Dead)
	wantResults, wantDead := len(good)+len(big), 0
	for _, c := range cases {
		seq, stored := seqs[c.Name]
		if !stored {
			continue
		}
		wantResults++
		if c.Expect.Dead {
			wantDead++
		}
		if err := checkCase(m, c, seq, results, dead); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if len(acct.Results) != wantResults || len(acct.Dead) != wantDead {
		t.Errorf("%d results and %d dead letters; want %d and %d", len(acct.Results), len(acct.Dead), wantResults, wantDead)
	}
	if acct.JobsLeft != 0 {
		t.Errorf("%d jobs left in the job stream; want 0", acct.JobsLeft)
	}
	goodAcct := &chaos.Account{Results: acct.Results}
	all := append(good, big...)
	tally := goodAcct.Tally(idsOf(all))
	tally.Strangers = nil // the corpus's own results
	if err := tally.Err(); err != nil {
		t.Errorf("good jobs: %v", err)
	}
	checkOutputs(t, m, all, acct)

	// Exactly the cases that ask for a reply on an inbox get one.
	wantReplies := map[string]bool{}
	for _, c := range cases {
		if c.Expect.Reply {
			wantReplies[c.Expect.ID] = true
		}
	}
	for range wantReplies {
		m, err := inbox.NextMsg(5 * time.Second)
		if err != nil {
			t.Errorf("replies on _INBOX.chaos.>: %v; want one for each of %v", err, wantReplies)
			break
		}
		r, err := gearbox.DecodeResult(m.Data, gearbox.EncodingOf(m.Header))
		if err != nil || !wantReplies[r.ID] || r.Error != nil {
			t.Errorf("reply on %s: %+v, %v; want a result for one of %v", m.Subject, r, err, wantReplies)
		}
	}
	if n, _, _ := inbox.Pending(); n != 0 {
		t.Errorf("%d more replies on _INBOX.chaos.>; want %d in all", n, len(wantReplies))
	}
	for s, sub := range spied {
		if n, _, _ := sub.Pending(); n != 0 {
			t.Errorf("%d message(s) were published to %s; want none", n, s)
		}
	}
}

// byMsgID groups answers by Nats-Msg-Id.
func byMsgID(as []chaos.Answer) map[string][]chaos.Answer {
	out := map[string][]chaos.Answer{}
	for _, a := range as {
		out[a.MsgID] = append(out[a.MsgID], a)
	}
	return out
}

// checkCase checks the answers to the corpus job c, stored at seq.
func checkCase(m *model.Model, c *chaos.Case, seq uint64, results, dead map[string][]chaos.Answer) error {
	e := c.Expect
	key := e.ID
	if key == "" {
		key = fmt.Sprintf("gearbox-seq-%d", seq)
	}
	rs := results[key]
	if len(rs) != 1 {
		return fmt.Errorf("%d results under Nats-Msg-Id %.40q; want 1", len(rs), key)
	}
	r := rs[0]
	if want := "gearbox.results." + e.Token; r.Subject != want {
		return fmt.Errorf("result on %s; want %s", r.Subject, want)
	}
	if r.Result.ID != e.ID {
		return fmt.Errorf("result id %.40q; want %.40q", r.Result.ID, e.ID)
	}
	switch {
	case e.Code == "" && r.Result.Error != nil:
		return fmt.Errorf("result error %v; want a result", r.Result.Error)
	case e.Code == "":
		j, err := gearbox.DecodeJob(c.Payload, gearbox.EncodingOf(c.Msg().Header))
		if err != nil {
			return err
		}
		if err := outputErr(m, j, r.Result, 1e-5); err != nil {
			return err
		}
	case r.Result.Error == nil:
		return fmt.Errorf("a result with output; want %s", e.Code)
	case string(r.Result.Error.Code) != e.Code || !strings.Contains(r.Result.Error.Message, e.Message):
		return fmt.Errorf("result error %v; want %s mentioning %q", r.Result.Error, e.Code, e.Message)
	case len(r.Result.Error.Message) > 512:
		return fmt.Errorf("result error message is %d bytes; want it bounded", len(r.Result.Error.Message))
	}
	ds := dead["dead-"+key]
	switch {
	case !e.Dead && len(ds) > 0:
		return fmt.Errorf("%d dead letters; want none", len(ds))
	case e.Dead && len(ds) != 1:
		return fmt.Errorf("%d dead letters; want 1", len(ds))
	case e.Dead && ds[0].Header.Get(gearbox.HeaderErrorCode) != e.Code:
		return fmt.Errorf("dead letter code %q; want %q", ds[0].Header.Get(gearbox.HeaderErrorCode), e.Code)
	case e.Dead && ds[0].Subject != "gearbox.dead."+e.Token:
		return fmt.Errorf("dead letter on %s; want gearbox.dead.%s", ds[0].Subject, e.Token)
	case e.Dead && ds[0].Header.Get(jetstream.MsgIDHeader) != "dead-"+key:
		return fmt.Errorf("dead letter id %q", ds[0].Header.Get(jetstream.MsgIDHeader))
	}
	return nil
}
