package demo

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// Summary is what a demo run measured.
type Summary struct {
	mu        sync.Mutex
	sentAt    []time.Time
	asked     []precision.Format
	bad       []bool
	answered  []bool
	latencies []time.Duration
	batches   map[string]int // batch id → rows
	ran       map[[2]precision.Format]int
	codes     map[gearbox.Code]int
	changes   []change            // policy changes seen, in order
	auto      []autoResult        // auto jobs: when sent, precision run
	computed  map[string]computed // batch id → its precision and compute time
	reports   []report            // the model's quality reports, as they came
	expectBad int
	wrong     int // results whose success or failure was not what the job called for
	n         int
	start     time.Time
	published time.Duration
	elapsed   time.Duration
	rate      float64 // the publishing pace asked for (0: a burst)
	model     *model.Model
}

// change is a policy change as the demo saw it.
type change struct {
	at time.Duration // since the first publish
	p  *gearbox.PrecisionPolicy
}

// report is a quality report's served precision and error as the demo
// saw it.
type report struct {
	at     time.Duration // since the first publish
	served precision.Format
	relL2  float64
}

// computed is a batch's precision and compute time, from its results.
type computed struct {
	p    precision.Format
	rows int
	ms   float64
}

type autoResult struct {
	answered time.Duration // since the first publish
	ran      precision.Format
}

func (s *Summary) begin(start time.Time) {
	s.mu.Lock()
	s.start = start
	s.mu.Unlock()
}

func (s *Summary) finish(elapsed time.Duration) {
	s.mu.Lock()
	s.elapsed = elapsed
	s.mu.Unlock()
}

// policy records a policy change seen at.
func (s *Summary) policy(p *gearbox.PrecisionPolicy, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, change{at: at.Sub(s.start), p: p})
}

// report records a quality report seen at.
func (s *Summary) report(r *gearbox.QualityReport, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, report{at: at.Sub(s.start), served: r.Served, relL2: r.ServedMetrics.RelL2})
}

// PolicyChanges lists the precisions the policy moved to, in order.
func (s *Summary) PolicyChanges() []precision.Format {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fs []precision.Format
	for _, c := range s.changes {
		fs = append(fs, c.p.Precision)
	}
	return fs
}

func newSummary(jobs int) *Summary {
	return &Summary{
		sentAt:   make([]time.Time, jobs),
		asked:    make([]precision.Format, jobs),
		bad:      make([]bool, jobs),
		answered: make([]bool, jobs),
		batches:  map[string]int{},
		ran:      map[[2]precision.Format]int{},
		codes:    map[gearbox.Code]int{},
		computed: map[string]computed{},
	}
}

func (s *Summary) sent(i int, j *gearbox.Job, bad bool, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sentAt[i], s.asked[i], s.bad[i] = at, j.Precision, bad
	if bad {
		s.expectBad++
	}
}

// add records a result; it reports whether it answered a demo job for the
// first time.
func (s *Summary) add(r *gearbox.Result, at time.Time) bool {
	i, ok := jobIndex(r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || i >= len(s.answered) || s.answered[i] || s.sentAt[i].IsZero() {
		return false
	}
	s.answered[i] = true
	s.n++
	s.latencies = append(s.latencies, at.Sub(s.sentAt[i]))
	if (r.Error != nil) != s.bad[i] {
		s.wrong++
	}
	if r.Error != nil {
		s.codes[r.Error.Code]++
		return true
	}
	s.batches[r.Batch] = r.BatchRows
	s.ran[[2]precision.Format{s.asked[i], r.Precision}]++
	s.computed[r.Batch] = computed{p: r.Precision, rows: r.BatchRows, ms: r.ComputeMs}
	if s.asked[i] == precision.Auto || s.asked[i] == "" {
		s.auto = append(s.auto, autoResult{answered: at.Sub(s.start), ran: r.Precision})
	}
	return true
}

func (s *Summary) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Results is the number of jobs answered.
func (s *Summary) Results() int { return s.count() }

// Errors is the number of jobs answered with an error.
func (s *Summary) Errors() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sumCodes(s.codes)
}

// Unexpected is the number of results that failed when the job was valid
// or succeeded when it was not.
func (s *Summary) Unexpected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrong
}

// JobsPerSecond is answered jobs over the time from the first publish to
// the last result.
func (s *Summary) JobsPerSecond() float64 {
	return float64(s.count()) / s.elapsed.Seconds()
}

// round keeps three significant digits of a latency.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(10 * time.Microsecond)
	}
}

// progress draws a progress bar on w until the returned stop is called: in
// place on a terminal, else a line a second.
func (s *Summary) progress(w io.Writer, total int) (stop func()) {
	if w == nil {
		return func() {}
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	every, eol := 100*time.Millisecond, ""
	if !tty {
		every, eol = time.Second, "\n"
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	draw := func() {
		n := s.count()
		const width = 40
		fill := width * n / total
		rate := float64(n) / time.Since(s.start).Seconds()
		if tty {
			fmt.Fprint(w, "\r")
		}
		fmt.Fprintf(w, "[%s%s] %6d/%d results  %7.0f jobs/s%s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n, total, rate, eol)
	}
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				draw()
				if tty {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
				draw()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// Print writes the summary table.
func (s *Summary) Print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lat := slices.Clone(s.latencies)
	slices.Sort(lat)
	pct := func(p float64) string {
		if len(lat) == 0 {
			return "-"
		}
		return round(lat[min(len(lat)-1, int(p*float64(len(lat))))]).String()
	}
	rows, nb := 0, 0
	for _, r := range s.batches {
		rows += r
		nb++
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "jobs answered\t%d\n", s.n)
	fmt.Fprintf(tw, "throughput\t%.0f jobs/s (%.2fs from first publish to last result; publishing took %.2fs)\n",
		float64(s.n)/s.elapsed.Seconds(), s.elapsed.Seconds(), s.published.Seconds())
	fmt.Fprintf(tw, "latency p50 / p95 / p99\t%s / %s / %s (publish to result received)\n", pct(0.50), pct(0.95), pct(0.99))
	if note := s.backlog(); note != "" {
		fmt.Fprintf(tw, "\t%s\n", note)
	}
	if nb > 0 {
		fmt.Fprintf(tw, "batches\t%d, mean %.1f rows per batch\n", nb, float64(rows)/float64(nb))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nresults by precision (asked → ran):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	keys := make([][2]precision.Format, 0, len(s.ran))
	for k := range s.ran {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t→ %s\t%d\n", k[0], k[1], s.ran[k])
	}
	tw.Flush()

	s.printLoop(w)

	fmt.Fprintf(w, "\nerrors: %d (the load generator sent %d invalid jobs on purpose)\n", sumCodes(s.codes), s.expectBad)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range gearbox.Codes {
		if n := s.codes[c]; n > 0 {
			fmt.Fprintf(tw, "  %s\t%d\n", c, n)
		}
	}
	tw.Flush()
	if s.wrong > 0 {
		fmt.Fprintf(w, "\nWARNING: %d results did not match what their job called for\n", s.wrong)
	}
}

// printLoop shows the quality loop at work: each policy change with its
// evidence, and the precision auto jobs ran at over the run.
func (s *Summary) printLoop(w io.Writer) {
	fmt.Fprintf(w, "\nprecision policy (the quality loop; %d changes):\n", len(s.changes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range s.changes {
		fmt.Fprintf(tw, "  +%.2fs\t%s\t→ %s\tby %s:\t%s\n", c.at.Seconds(), c.p.Model, c.p.Precision, c.p.By, c.p.Reason)
	}
	tw.Flush()
	if len(s.auto) == 0 {
		return
	}
	const slots = 8
	last := time.Duration(0)
	for _, a := range s.auto {
		last = max(last, a.answered)
	}
	step := last/slots + 1
	counts := make([]map[precision.Format]int, slots)
	for i := range counts {
		counts[i] = map[precision.Format]int{}
	}
	for _, a := range s.auto {
		counts[min(int(a.answered/step), slots-1)][a.ran]++
	}
	fmt.Fprintln(w, "\nauto jobs by when they were answered → precision run:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, c := range counts {
		var parts []string
		for _, f := range precision.All {
			if n := c[f]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", f, n))
			}
		}
		fmt.Fprintf(tw, "  %5.2fs–%.2fs\t%s\n", (time.Duration(i) * step).Seconds(), (time.Duration(i+1) * step).Seconds(), strings.Join(parts, ", "))
	}
	tw.Flush()
}

// backlog explains a latency that is mostly queueing: jobs published
// faster than the workers served them waited in the stream for their turn.
// It is empty when publishing kept below the serving rate.
func (s *Summary) backlog() string {
	if s.n == 0 || s.elapsed <= 0 || s.published <= 0 {
		return ""
	}
	served := float64(s.n) / s.elapsed.Seconds()
	pub := float64(len(s.sentAt)) / s.published.Seconds()
	if pub <= 1.1*served {
		return ""
	}
	how := fmt.Sprintf("the %d jobs were published in %.2fs\n\t(%.0f jobs/s, a burst)", len(s.sentAt), s.published.Seconds(), pub)
	if s.rate > 0 {
		how = fmt.Sprintf("jobs were published at\n\t%.0f jobs/s", pub)
	}
	return fmt.Sprintf("mostly backlog, not service time: %s, faster than the workers served them (%.0f jobs/s),\n"+
		"\tso they waited in the stream; with --rate below %.0f, latency is service time", how, served, served)
}

func sumCodes(m map[gearbox.Code]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}
