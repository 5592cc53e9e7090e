package demo

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// LMSummary is what the language-model run measured.
type LMSummary struct {
	mu        sync.Mutex
	model     string
	params    int64
	prompts   []prompt
	precs     []precision.Format
	maxTokens int
	source    string // where the prompts came from
	backend   string
	workers   int
	phases    []lmPhase
	changes   []change // before the walk
	walk      *walk
	maxError  float64 // the model's target
	metric    string  // what it bounds, for people
	reference precision.Format
	ladder    []precision.Format
	start     time.Time
	wrong     int // results that are errors, at another precision, or repeated
	dups      int // results for a job answered already
}

// lmPhase is one precision's jobs.
type lmPhase struct {
	start, last time.Time
	results     []*gearbox.Result // by prompt
	n           int
}

func newLMSummary(m *lm.Model, ps []prompt, precs []precision.Format, maxTokens int) *LMSummary {
	s := &LMSummary{model: m.Name, params: m.Params(), prompts: ps, precs: precs, maxTokens: maxTokens, phases: make([]lmPhase, len(precs)),
		walk: newWalk(), maxError: m.Quality.MaxError, metric: metricName(m.Quality.Metric), reference: m.Reference(), ladder: m.Precision.Ladder}
	for i := range s.phases {
		s.phases[i].results = make([]*gearbox.Result, len(ps))
	}
	return s
}

// begin marks the start of phase i.
func (s *LMSummary) begin(i int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phases[i].start = at
	if i == 0 {
		s.start = at
	}
}

// add records a result; it reports whether it answered one of the run's
// jobs for the first time.
func (s *LMSummary) add(r *gearbox.Result, at time.Time) bool {
	p, i, ok := lmJobIndex(r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := slices.Index(s.precs, p)
	if !ok || pi < 0 || i >= len(s.prompts) {
		return false
	}
	ph := &s.phases[pi]
	if ph.results[i] != nil {
		s.dups++
		s.wrong++
		return false
	}
	ph.results[i], ph.last = r, at
	ph.n++
	if r.Error != nil || r.Precision != p {
		s.wrong++
	}
	return true
}

// policy records a change of the model's precision policy.
func (s *LMSummary) policy(p *gearbox.PrecisionPolicy, at time.Time) {
	if s.walk.policy(p, at) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, change{at: at.Sub(s.start), p: p})
}

// Unexpected is the number of results that were errors, ran at another
// precision than their job asked for, or answered a job a second time.
func (s *LMSummary) Unexpected() int {
	s.walk.mu.Lock()
	n := s.walk.wrong
	s.walk.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrong + n
}

// Walk is what the walk phase saw.
func (s *LMSummary) Walk() Walk { return s.walk.snapshot() }

// Results is the number of jobs answered, at every precision.
func (s *LMSummary) Results() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ph := range s.phases {
		n += ph.n
	}
	return n
}

// Completion is prompt i's result at precision p; nil when p was not run
// or the job was not answered.
func (s *LMSummary) Completion(p precision.Format, i int) *gearbox.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := slices.Index(s.precs, p)
	if pi < 0 || i < 0 || i >= len(s.prompts) {
		return nil
	}
	return s.phases[pi].results[i]
}

// Prompt is prompt i's text.
func (s *LMSummary) Prompt(i int) string { return s.prompts[i].text }

// Prompts is the number of prompts, each run at every precision.
func (s *LMSummary) Prompts() int { return len(s.prompts) }

// LMStats is one precision's measures.
type LMStats struct {
	Precision precision.Format
	// Answered jobs, of which Failed carry an error.
	Answered, Failed int
	// PromptTokens and Generated are the tokens of all its jobs; Wall is
	// from its first publish to its last result.
	PromptTokens, Generated int
	Wall                    time.Duration
	// TTFT50 and TTFT99 are percentiles of time to first token, from
	// publish (the results' ttft_ms).
	TTFT50, TTFT99 time.Duration
	// ITL50 is the median over jobs of the mean time between generated
	// tokens.
	ITL50 time.Duration
	// Identical counts the prompts whose tokens equal the reference
	// precision's; Agreement is the fraction of reference tokens matched
	// before the first difference, over all prompts.
	Identical int
	Agreement float64
}

// PromptPerSecond and GeneratedPerSecond are tokens of each kind per
// second of the precision's wall time (as a rate() of the worker's token
// counter reads).
func (st LMStats) PromptPerSecond() float64 { return float64(st.PromptTokens) / st.Wall.Seconds() }

// GeneratedPerSecond: see PromptPerSecond.
func (st LMStats) GeneratedPerSecond() float64 { return float64(st.Generated) / st.Wall.Seconds() }

// Stats returns each precision's measures, in the order run.
func (s *LMSummary) Stats() []LMStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LMStats, len(s.precs))
	for pi, p := range s.precs {
		ph := &s.phases[pi]
		st := LMStats{Precision: p, Answered: ph.n, Wall: ph.last.Sub(ph.start)}
		var ttft, itl []time.Duration
		var matched, total int
		for i, r := range ph.results {
			if r == nil {
				continue
			}
			if r.Error != nil {
				st.Failed++
				continue
			}
			if r.Usage != nil {
				st.PromptTokens += r.Usage.PromptTokens
				st.Generated += r.Usage.CompletionTokens
			}
			ttft = append(ttft, msDuration(r.TTFTMs))
			// compute_ms runs from the engine taking the job to its end;
			// queued_ms to when it took it: the first token came
			// ttft − queued after it was taken, the rest after.
			if n := len(r.Tokens); n > 1 {
				itl = append(itl, msDuration(r.ComputeMs-(r.TTFTMs-r.QueuedMs))/time.Duration(n-1))
			}
			ref := s.phases[0].results[i]
			if ref == nil || ref.Error != nil {
				continue
			}
			if slices.Equal(r.Tokens, ref.Tokens) {
				st.Identical++
			}
			matched += commonPrefix(r.Tokens, ref.Tokens)
			total += max(len(ref.Tokens), len(r.Tokens))
		}
		if total > 0 {
			st.Agreement = float64(matched) / float64(total)
		}
		st.TTFT50, st.TTFT99 = percentile(ttft, 0.5), percentile(ttft, 0.99)
		st.ITL50 = percentile(itl, 0.5)
		out[pi] = st
	}
	return out
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// percentile is the p-quantile of ds (nearest rank), 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// Print writes the run's table, one prompt's completions at every
// precision, and the model's policy changes.
func (s *LMSummary) Print(w io.Writer) {
	stats := s.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.precs[0]
	fmt.Fprintf(w, "language model %s (%.1f M parameters) on %s, %d workers: %d prompts from %s,\n"+
		"each run at every precision, one precision at a time: greedy, up to %d tokens\n\n",
		s.model, float64(s.params)/1e6, s.backend, s.workers, len(s.prompts), s.source, s.maxTokens)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "precision\tjobs\tprompt tok/s\tgenerated tok/s\tTTFT p50\tTTFT p99\tper token p50\tsame as %s\ttokens agreeing\t\n", ref)
	var all []time.Duration
	for pi, st := range stats {
		for _, r := range s.phases[pi].results {
			if r != nil && r.Error == nil {
				all = append(all, msDuration(r.TTFTMs))
			}
		}
		answered := fmt.Sprint(st.Answered)
		if st.Failed > 0 {
			answered = fmt.Sprintf("%d (%d failed)", st.Answered, st.Failed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%d/%d\t%.0f %%\t\n", st.Precision, answered, st.PromptPerSecond(), st.GeneratedPerSecond(),
			round(st.TTFT50), round(st.TTFT99), round(st.ITL50), st.Identical, len(s.prompts), 100*st.Agreement)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntime to first token, all precisions: p50 %s, p99 %s (from publish: a precision's prompts are published\n"+
		"at once and wait for a place in the engine's batch); tokens/s are per second of each precision's run;\n"+
		"\"tokens agreeing\": tokens equal to %s's before the first difference, over all its tokens\n",
		round(percentile(all, 0.5)), round(percentile(all, 0.99)), ref)
	if s.dups > 0 {
		fmt.Fprintf(w, "WARNING: %d jobs were answered more than once\n", s.dups)
	}
	s.printCompletions(w)
	s.printPolicy(w)
}

// printCompletions shows the prompt whose completions differ most across
// precisions: the end of the prompt, then each precision's completion.
func (s *LMSummary) printCompletions(w io.Writer) {
	show, most := -1, 0
	for i := range s.prompts {
		distinct := map[string]bool{}
		for pi := range s.phases {
			if r := s.phases[pi].results[i]; r != nil && r.Error == nil {
				distinct[fmt.Sprint(r.Tokens)] = true
			}
		}
		if len(distinct) > most {
			show, most = i, len(distinct)
		}
	}
	if show < 0 {
		return
	}
	pr := s.prompts[show]
	fmt.Fprintf(w, "\n%s, its first %d tokens as the prompt (the last lines shown), then each precision's completion\n"+
		"(%d different completions of %d):\n", pr.name, pr.ids, most, len(s.precs))
	const tailLines = 4
	lines := strings.Split(strings.TrimSuffix(pr.text, "\n"), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	width := 0
	for _, p := range s.precs {
		width = max(width, len(p))
	}
	pad := strings.Repeat(" ", width)
	for _, l := range lines {
		fmt.Fprintf(w, "  %s │ %s\n", pad, expandTabs(l))
	}
	ref := s.phases[0].results[show]
	for pi, p := range s.precs {
		r := s.phases[pi].results[show]
		fmt.Fprintf(w, "  %s ┼%s\n", strings.Repeat("─", width), strings.Repeat("─", 40))
		if r == nil || r.Error != nil {
			fmt.Fprintf(w, "  %*s │ (no completion: %v)\n", width, p, r.Error)
			continue
		}
		note := "same as " + string(s.precs[0])
		if pi == 0 {
			note = "the reference"
		} else if ref != nil && !slices.Equal(r.Tokens, ref.Tokens) {
			note = fmt.Sprintf("differs from %s after %d tokens", s.precs[0], commonPrefix(r.Tokens, ref.Tokens))
		}
		for k, l := range strings.Split(r.Text, "\n") {
			label := pad
			if k == 0 {
				label = fmt.Sprintf("%*s", width, p)
			}
			fmt.Fprintf(w, "  %s │ %s\n", label, expandTabs(l))
		}
		fmt.Fprintf(w, "  %s │ [%d tokens, %s; %s]\n", pad, len(r.Tokens), r.FinishReason, note)
	}
}

// printPolicy shows the model's policy: its changes while the jobs named
// their precision (the policy does not choose it for them), then the
// walk, the quality loop on token distributions at work.
func (s *LMSummary) printPolicy(w io.Writer) {
	fmt.Fprintf(w, "\nprecision policy of %s (the quality loop on %s; %d changes while the jobs above named their precision)\n", s.model, s.metric, len(s.changes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range s.changes {
		fmt.Fprintf(tw, "  +%.2fs\t→ %s\tby %s:\t%s\n", c.at.Seconds(), c.p.Precision, c.p.By, c.p.Reason)
	}
	tw.Flush()
	s.walk.print(w, s.metric, s.maxError, s.reference)
}

// metricName is what a language model's quality metric is called.
func metricName(m lm.Metric) string {
	if m == lm.RelL2 {
		return "the logits' relative L2 error"
	}
	return "KL per token"
}

// expandTabs shows a tab of Go source as four spaces.
func expandTabs(s string) string { return strings.ReplaceAll(s, "\t", "    ") }
