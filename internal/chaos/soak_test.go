package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/chaos"
	"github.com/gearbox-inference/gearbox/model"
)

// TestSoak: jobs published at a steady rate (in msgpack and JSON) while a
// random worker process is SIGKILLed every killEvery, and the NATS server
// is SIGKILLed once, 40% of the way through, and started again a second
// later on the same store and port. Every job must end with exactly one
// result, correct against the float64 reference; none lost, none
// duplicated, no dead letter, nothing left in the job stream.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak drill runs for about half a minute: run it without -short (task chaos)")
	}
	s := scale(t)
	b := binaries(t)
	dir := t.TempDir()
	srv, err := chaos.StartServer(b.NATSD, chaos.ServerConfig{Name: "n0", Dir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(5 * time.Second)
	m := demoModel(t, filepath.Join(dir, "models"))
	// A short AckWait brings back the jobs a killed worker held within
	// seconds; the result stream's duplicate window (10 min) outlasts
	// AckWait × MaxDeliver many times over.
	streams := gearbox.StreamsConfig{AckWait: 4 * time.Second}
	nc := connect(t, srv.URL)
	mp, err := gearbox.NewClient(nc)
	if err != nil {
		t.Fatal(err)
	}
	js, err := gearbox.NewClient(nc, gearbox.WithEncoding(gearbox.JSON))
	if err != nil {
		t.Fatal(err)
	}
	provision(t, mp, streams)
	fleet, err := chaos.StartFleet(chaos.FleetConfig{
		Gearbox: b.Gearbox, Dir: dir, Workers: s.workers, URL: srv.URL, Models: filepath.Join(dir, "models"),
		Streams: streams,
		// The precision stays fp32, so every output is checked against
		// the float64 reference at fp32's accuracy.
		Env: []string{"GEARBOX_QUALITY_CONTROL=false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop(5 * time.Second)

	all := jobs(m, "soak", s.jobs)
	halves := [2][]*gearbox.Job{}
	for i, j := range all {
		halves[i%2] = append(halves[i%2], j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.publishing()+5*time.Minute)
	defer cancel()

	// The chaos: worker kills every killEvery, one server kill.
	stop := make(chan struct{})
	var chaosDone sync.WaitGroup
	kills, serverDown := 0, time.Duration(0)
	var chaosErr error
	chaosDone.Go(func() {
		r := rand.New(rand.NewPCG(1, 2))
		tick := time.NewTicker(s.killEvery)
		defer tick.Stop()
		serverKill := time.After(s.publishing() * 2 / 5)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := fleet.KillRandom(r); err == nil {
					kills++
				} else if !errors.Is(err, chaos.ErrNotRunning) {
					chaosErr = err
					return
				}
			case <-serverKill:
				t0 := time.Now()
				if err := srv.Kill(); err != nil {
					chaosErr = err
					return
				}
				time.Sleep(time.Second)
				if err := srv.Restart(); err != nil {
					chaosErr = err
					return
				}
				serverDown = time.Since(t0)
			}
		}
	})

	start := time.Now()
	var stats [2]chaos.PublishStats
	var pubErr [2]error
	var producers sync.WaitGroup
	for i, c := range []*gearbox.Client{mp, js} {
		producers.Go(func() {
			stats[i], pubErr[i] = chaos.Publish(ctx, c, halves[i], chaos.ProducerConfig{Rate: s.rate / 2})
		})
	}
	producers.Wait()
	published := time.Since(start)
	close(stop)
	chaosDone.Wait()
	if err := errors.Join(pubErr[0], pubErr[1], chaosErr); err != nil {
		logTails(t, append(fleet.Workers, srv.Proc)...)
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, s.drainTimeout())
	defer dcancel()
	if err := chaos.WaitDrained(dctx, mp.JetStream(), mp.Subjects()); err != nil {
		logTails(t, append(fleet.Workers, srv.Proc)...)
		dumpStuck(t, fleet)
		t.Fatal(err)
	}
	drained := time.Since(start)
	deliveries, err := chaos.Deliveries(ctx, mp.JetStream(), mp.Subjects())
	if err != nil {
		t.Fatal(err)
	}
	deaths := len(fleet.Exits())
	acct := settle(ctx, t, mp, fleet)
	tally := acct.Tally(idsOf(all))
	t.Logf("%d jobs (%d rows) published in %v, all answered after %v; %d workers, %d SIGKILLs (every %v), %d worker deaths in all; server killed once, back after %v",
		s.jobs, rowsOf(all), published.Round(time.Millisecond), drained.Round(time.Millisecond), s.workers, kills, s.killEvery, deaths, serverDown.Round(time.Millisecond))
	t.Logf("%d deliveries for %d jobs; publish retries %d, duplicate publishes dropped %d; %d results: %v",
		deliveries, s.jobs, stats[0].Retries+stats[1].Retries, stats[0].Duplicates+stats[1].Duplicates, len(acct.Results), tally)
	if err := tally.Err(); err != nil {
		logTails(t, fleet.Workers...)
		t.Fatal(err)
	}
	if serverDown == 0 {
		t.Errorf("the server was never killed: the drill proved less than it says")
	}
	if kills == 0 {
		t.Errorf("no worker was killed: the drill proved nothing (raise GEARBOX_CHAOS_JOBS or lower GEARBOX_CHAOS_RATE)")
	}
	checkOutputs(t, m, all, acct)
}

// checkOutputs checks every result of jobs against the float64 reference
// (of a job over 1,024 rows, its first and last 512 rows: the float64
// reference of 65,536 rows is slow under the race detector).
func checkOutputs(t *testing.T, m *model.Model, jobs []*gearbox.Job, acct *chaos.Account) {
	t.Helper()
	byID := make(map[string]*gearbox.Job, len(jobs))
	for _, j := range jobs {
		byID[j.ID] = j
	}
	bad := 0
	for _, a := range acct.Results {
		if j := byID[a.Result.ID]; j != nil {
			var err error
			if n := j.Input.Rows(); n > 1024 && a.Result.Error == nil {
				err = outputRowsErr(m, j, a.Result, 0, 512)
				if err == nil {
					err = outputRowsErr(m, j, a.Result, n-512, n)
				}
			} else {
				err = outputErr(m, j, a.Result, 1e-5)
			}
			if err != nil {
				if bad++; bad <= 5 {
					t.Error(err)
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d results wrong in all", bad)
	}
}

// outputRowsErr is outputErr on rows [from, to) of a job and its result.
func outputRowsErr(m *model.Model, j *gearbox.Job, r *gearbox.Result, from, to int) error {
	in, err := j.Input.Values()
	if err != nil {
		return err
	}
	out, err := r.Output.Values()
	if err != nil || len(out) != j.Input.Rows()*m.OutputFeatures {
		return fmt.Errorf("job %s: output shape %v: %v", j.ID, r.Output.Shape, err)
	}
	fin, fout := m.InputFeatures, m.OutputFeatures
	sub := &gearbox.Job{ID: fmt.Sprintf("%s[%d:%d]", j.ID, from, to), Input: gearbox.NewTensor(to-from, fin, in[from*fin:to*fin])}
	o := gearbox.NewTensor(to-from, fout, out[from*fout:to*fout])
	return outputErr(m, sub, &gearbox.Result{Output: &o, Precision: r.Precision}, 1e-5)
}

func rowsOf(jobs []*gearbox.Job) int {
	n := 0
	for _, j := range jobs {
		n += j.Input.Rows()
	}
	return n
}
