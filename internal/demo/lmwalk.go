package demo

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

// The walk: after the explicit precisions, the demo sets the model's
// policy by hand to the top of its ladder (quality.SetPolicy, as `gearbox
// policy set --precision` does: the evidence restarts at the quality
// stream's end, so the explicit phases' reports do not count, and the
// cooldown runs from then), then publishes precision-auto jobs in rounds,
// each round after the last one's results, so that each is served at the
// precision the controllers have reached. The workers sample finished
// generations, re-run them teacher-forced and publish KL reports; their
// controllers step the policy down a rung once the next rung's KL has
// MinSamples reports within Margin × max_error and the cooldown has
// passed. After each round the demo replays the reports as the
// controllers do (quality.Inspect), and stops once they hold for a reason
// more evidence does not change (settled): the next rung's KL over the
// margin, the floor, a rung ruled out. A model starting at bf16, as the
// shipped one does, would show no walk: hence the top of the ladder.

// walkPrefix begins the ids of the walk's jobs.
const walkPrefix = "walk-"

// walkPerWorker is how many jobs a round gives each worker.
const walkPerWorker = 4

// walkPromptTokens bounds the walk's prompts: the last lines of the
// run's prompts.
const walkPromptTokens = 48

// settles are the holds that more reports do not lift.
var settles = []quality.Hold{quality.HoldMargin, quality.HoldFloor, quality.HoldRuledOut, quality.HoldCeiling, quality.HoldOffLadder}

// Walk is what the walk phase saw.
type Walk struct {
	// Skipped says why there was no walk; empty when there was one.
	Skipped string
	// Answered is the number of auto jobs answered without an error, Ran
	// how many of them ran at each precision.
	Answered int
	Ran      map[precision.Format]int
	// Policies are the model's policies during the walk, in order: the
	// one the demo set, then each change the controllers made.
	Policies []gearbox.PrecisionPolicy
	// Reports are the quality reports of the walk's jobs, as they came.
	Reports []*gearbox.QualityReport
	// Status is the controllers' view when the walk ended; Settled says
	// whether it holds for good (else the walk ran out of jobs).
	Status  quality.Status
	Settled bool
}

// walk records the walk phase as it runs.
type walk struct {
	mu       sync.Mutex
	start    time.Time // zero until it starts
	end      time.Duration
	skipped  string
	tokens   int
	rules    quality.Rules
	answered map[string]bool
	ran      map[precision.Format]int
	wrong    int // errors and repeated answers
	changes  []change
	reports  []walkReport
	status   quality.Status
	settled  bool
}

// walkReport is a report of a walk's job, and when it came.
type walkReport struct {
	at time.Duration // since the walk started
	r  *gearbox.QualityReport
}

func newWalk() *walk {
	return &walk{answered: map[string]bool{}, ran: map[precision.Format]int{}}
}

// begin marks the walk's start: policy changes from now on are its.
func (w *walk) begin(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start = at
}

// policy records a policy change seen at; false when the walk has not
// started.
func (w *walk) policy(p *gearbox.PrecisionPolicy, at time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.start.IsZero() {
		return false
	}
	w.changes = append(w.changes, change{at: at.Sub(w.start), p: p})
	return true
}

// report records a quality report seen at, if it checked a walk's job.
func (w *walk) report(r *gearbox.QualityReport, at time.Time) {
	if !strings.HasPrefix(r.Batch, walkPrefix) {
		return // a late check of an explicit phase's job
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reports = append(w.reports, walkReport{at: at.Sub(w.start), r: r})
}

// add records a walk job's result; it reports whether it answered the
// job for the first time.
func (w *walk) add(r *gearbox.Result) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.answered[r.ID] {
		w.wrong++
		return false
	}
	w.answered[r.ID] = true
	if r.Error != nil {
		w.wrong++
	} else {
		w.ran[r.Precision]++
	}
	return true
}

// finish records the controllers' view at the walk's end.
func (w *walk) finish(st quality.Status, settled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status, w.settled, w.end = st, settled, time.Since(w.start)
}

func (w *walk) skip(why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.skipped = why
}

// snapshot is the walk as Walk.
func (w *walk) snapshot() Walk {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := Walk{Skipped: w.skipped, Ran: map[precision.Format]int{}, Status: w.status, Settled: w.settled}
	for p, n := range w.ran {
		out.Ran[p] = n
		out.Answered += n
	}
	for _, c := range w.changes {
		out.Policies = append(out.Policies, *c.p)
	}
	for _, r := range w.reports {
		out.Reports = append(out.Reports, r.r)
	}
	return out
}

// walk runs the walk phase: up to lc.Walk auto jobs; walked signals each
// answered.
func (r *lmRun) walk(cfg Config, lc LMConfig, ps []prompt, w *walk, walked <-chan struct{}) error {
	q := cfg.Worker.Quality
	switch {
	case lc.Walk < 0:
		w.skip("no walk asked for")
		return nil
	case !q.Enabled() || !q.Control:
		w.skip("the workers' quality loop is off (no sample rate or interval, or no controller)")
		return nil
	}
	ladder := r.m.Precision.Ladder
	w.rules, w.tokens = q.Rules, lc.WalkTokens
	go func() {
		for rep, err := range r.c.client.QualityReports(r.ctx, r.m.Name, false) {
			if err != nil {
				return // the summary lacks a picture's dots, nothing more
			}
			w.report(rep, time.Now())
		}
	}()
	start := time.Now()
	w.begin(start)
	base := gearbox.PrecisionPolicy{Model: r.m.Name, Floor: ladder[len(ladder)-1], Ceiling: ladder[0]}
	_, _, err := quality.SetPolicy(r.ctx, r.c.client.JetStream(), r.c.subj, r.c.kv, r.m.Name, base, func(p *gearbox.PrecisionPolicy) error {
		p.Precision, p.Floor, p.Ceiling = ladder[0], base.Floor, base.Ceiling
		p.Reason = "set by the demo: the walk starts at the top of the ladder"
		return nil
	})
	if err != nil {
		return fmt.Errorf("the walk's starting policy: %w", err)
	}
	temp, round := 0.8, walkPerWorker*max(cfg.Workers, 1)
	var st quality.Status
	settled, sent, prev := false, 0, precision.Format("")
	progress := func(what string) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s walk: %s after %d auto jobs, %.2fs\n", r.m.Name, what, sent, time.Since(start).Seconds())
		}
	}
	for sent < lc.Walk && !settled {
		n := min(round, lc.Walk-sent)
		for range n {
			seed := uint64(sent)
			id := walkPrefix + strconv.Itoa(sent)
			if err := r.publish(id, precision.Auto, ps[sent%len(ps)].tail, &lc.WalkTokens, &temp, &seed); err != nil {
				return err
			}
			sent++
		}
		if err := r.wait(walked, n, "the walk's results"); err != nil {
			return err
		}
		st, _, err = quality.Inspect(r.ctx, r.c.client.JetStream(), r.c.subj, r.c.kv, r.m.Name, q.Rules)
		if err != nil {
			return fmt.Errorf("the walk: %w", err)
		}
		if p := st.Policy.Precision; p != prev {
			progress("policy " + string(p))
			prev = p
		}
		settled = st.Rev > 0 && len(st.Pending) == 0 && slices.Contains(settles, st.Hold)
		if st.Hold == quality.HoldCooldown {
			// More jobs cannot lift a cooldown, only time: on a fast
			// backend the walk would spend its jobs waiting.
			select {
			case <-time.After(q.Rules.Cooldown / 4):
			case <-r.ctx.Done():
				return r.ctx.Err()
			}
		}
	}
	if settled {
		progress(fmt.Sprintf("holds at %s (%s)", st.Policy.Precision, st.Hold))
	} else {
		progress(fmt.Sprintf("out of jobs at %s (%s)", st.Policy.Precision, st.Hold))
	}
	w.finish(st, settled)
	return nil
}

// print writes the walk: each policy change with its evidence, where the
// policy holds and why, the windows it holds on, and the precisions the
// auto jobs ran at.
func (w *walk) print(out io.Writer, metric string, maxError float64, reference precision.Format) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.skipped != "" {
		fmt.Fprintf(out, "no walk of the policy: %s\n", w.skipped)
		return
	}
	rules := w.rules.WithDefaults()
	top := ""
	if len(w.changes) > 0 {
		top = string(w.changes[0].p.Precision) + ", "
	}
	fmt.Fprintf(out, "the walk: the demo set the policy to %sthe top of the ladder, and published auto jobs (the prompts'\n"+
		"last lines, up to %d tokens; sampled, up to %d tokens), %d per worker at a time; the workers re-ran sampled\n"+
		"ones teacher-forced against %s and published their %s; a step down needs %d reports of the next\n"+
		"rung within %.2g × max_error %.4g = %.4g, and %v since the last change:\n",
		top, walkPromptTokens, w.tokens, walkPerWorker, reference, metric, rules.MinSamples, rules.Margin, maxError, rules.Margin*maxError, rules.Cooldown)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range w.changes {
		fmt.Fprintf(tw, "  +%.2fs\t→ %s\tby %s:\t%s\n", c.at.Seconds(), c.p.Precision, c.p.By, c.p.Reason)
	}
	tw.Flush()
	n := 0
	for _, k := range w.ran {
		n += k
	}
	st := w.status
	if w.settled {
		fmt.Fprintf(out, "holds at %s (%s) after %d auto jobs in %.2fs: %s\n", st.Policy.Precision, st.Hold, n, w.end.Seconds(), st.Reason)
	} else {
		fmt.Fprintf(out, "out of jobs after %d auto jobs in %.2fs (the walk's limit), at %s, holding (%s): %s\n", n, w.end.Seconds(), st.Policy.Precision, st.Hold, st.Reason)
	}
	var ws []string
	for _, e := range st.Windows {
		ws = append(ws, fmt.Sprintf("%s %.2g, %.2g, %d", e.Precision, e.Mean, e.UpperBound, e.Samples))
	}
	if len(ws) > 0 {
		fmt.Fprintf(out, "%s since the last change (mean, max, reports): %s\n", metric, strings.Join(ws, "; "))
	}
	var ran []string
	for _, p := range precision.All {
		if k := w.ran[p]; k > 0 {
			ran = append(ran, fmt.Sprintf("%s %d", p, k))
		}
	}
	fmt.Fprintf(out, "auto jobs by precision run: %s; %d of them checked\n", strings.Join(ran, ", "), len(w.reports))
}
