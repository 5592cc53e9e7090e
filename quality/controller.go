package quality

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// Observation is one measured error at one precision: from a report's
// served or candidate metrics.
type Observation struct {
	Seq    uint64
	Worker string
	// Error is the report's error by the model's metric (QualityReport.Error):
	// relative L2, or a language model's KL.
	Error     float64
	NonFinite int
}

// window is the newest observations of one (model, precision), oldest
// first, at most Rules.Window long.
type window struct {
	obs  []Observation
	seen int // observations ever added since the state was reset
}

func (w *window) add(o Observation, max int) {
	if len(w.obs) == max {
		copy(w.obs, w.obs[1:])
		w.obs = w.obs[:max-1]
	}
	w.obs = append(w.obs, o)
	w.seen++
}

// evidence summarises the window: the upper bound is its largest error.
func (w *window) evidence(p precision.Format) *gearbox.Evidence {
	e := &gearbox.Evidence{Precision: p, Samples: len(w.obs)}
	if len(w.obs) == 0 {
		return e
	}
	workers := map[string]struct{}{}
	sum := 0.0
	for _, o := range w.obs {
		e.UpperBound = max(e.UpperBound, o.Error)
		sum += o.Error
		e.NonFinite += o.NonFinite
		workers[o.Worker] = struct{}{}
	}
	e.Mean = sum / float64(len(w.obs))
	e.Workers = len(workers)
	e.FirstSeq, e.LastSeq = w.obs[0].Seq, w.obs[len(w.obs)-1].Seq
	return e
}

// modelState is the controller's view of one model.
type modelState struct {
	policy gearbox.PrecisionPolicy
	rev    uint64 // KV revision of policy; 0 when the key does not exist
	pos    uint64 // last stream sequence considered
	// cold: reports between the policy's Seq and the first one replayed may
	// be lost (the stream dropped them), so windows may be short of what
	// other workers hold: a step down then waits for a full window.
	cold     bool
	windows  map[precision.Format]*window
	ladder   []precision.Format
	maxError float64 // the manifest's, from the newest report
	metric   string  // the model's metric, from the newest report
	// hold and why: why the last report changed nothing ("" after a change).
	hold Hold
	why  string
}

// Decision is a policy change: the new policy and the revision it replaces
// (0: the key does not exist yet).
type Decision struct {
	Policy gearbox.PrecisionPolicy
	Rev    uint64
	// From is the precision the change moves from: the same as
	// Policy.Precision when the change only rules a precision out.
	From precision.Format
}

// Direction is "up" (to a more accurate precision), "down", or "none" (a
// precision ruled out, the precision kept).
func (d *Decision) Direction() string {
	switch {
	case d.Policy.Precision == d.From:
		return "none"
	case d.Policy.Precision.MoreAccurate(d.From):
		return "up"
	}
	return "down"
}

// Controller applies Rules to a stream of reports. It is a pure state
// machine: no clock, no I/O, not safe for concurrent use. Start it with
// Replay, then feed it every report in stream order (Observe) and every
// policy read from the KV after that (Adopt, Forget); Runner does that
// against NATS, Inspect for one model at a time.
type Controller struct {
	rules  Rules
	models map[string]*modelState
	// coldStart makes models first met in the replay cold: the stream
	// has dropped its oldest reports.
	coldStart bool
}

// NewController returns a controller with rules (defaults applied).
func NewController(rules Rules) (*Controller, error) {
	if err := rules.Validate(); err != nil {
		return nil, err
	}
	return &Controller{rules: rules.WithDefaults(), models: map[string]*modelState{}}, nil
}

// Replay starts a new controller on a replay of GEARBOX_QUALITY whose
// oldest kept report is at sequence first (1 when the stream has dropped
// none), from the policies stored in the KV: it adopts each, and marks
// cold every model whose evidence the stream may have dropped — one whose
// policy took effect before first, and, when first > 1, every model first
// met in the replay. Call it once, before Observe; the replay then starts
// at first (Observe skips each model's reports up to its policy's Seq).
func (c *Controller) Replay(first uint64, stored []PolicyEntry) {
	for _, e := range stored {
		c.Adopt(e.Rev, e.PrecisionPolicy)
	}
	if first <= 1 {
		return
	}
	c.coldStart = true
	for _, s := range c.models {
		if s.policy.Seq+1 < first {
			s.cold = true
		}
	}
}

// Policy returns the model's current policy and its KV revision, or false
// when the controller knows nothing of the model.
func (c *Controller) Policy(model string) (gearbox.PrecisionPolicy, uint64, bool) {
	s, ok := c.models[model]
	if !ok || s.policy.Model == "" {
		return gearbox.PrecisionPolicy{}, 0, false
	}
	return s.policy, s.rev, true
}

// Position is the last stream sequence considered for model (0 if none).
func (c *Controller) Position(model string) uint64 {
	if s, ok := c.models[model]; ok {
		return s.pos
	}
	return 0
}

// Holding says why the last report of model changed nothing, in a Hold
// and in words; "" after a change, or before any report.
func (c *Controller) Holding(model string) (Hold, string) {
	if s, ok := c.models[model]; ok {
		return s.hold, s.why
	}
	return "", ""
}

// Status returns the controller's view of model, or false when it knows
// nothing of it.
func (c *Controller) Status(model string) (Status, bool) {
	s, ok := c.models[model]
	if !ok || s.policy.Model == "" {
		return Status{}, false
	}
	st := Status{Policy: s.policy, Rev: s.rev, Position: s.pos, Hold: s.hold, Reason: s.why, Cold: s.cold}
	for _, f := range precision.All {
		if w, ok := s.windows[f]; ok {
			st.Windows = append(st.Windows, *w.evidence(f))
		}
	}
	return st, true
}

func (c *Controller) state(model string) *modelState {
	s, ok := c.models[model]
	if !ok {
		s = &modelState{windows: map[precision.Format]*window{}, cold: c.coldStart}
		c.models[model] = s
	}
	return s
}

// ManualBy is PrecisionPolicy.By of a policy set by hand.
const ManualBy = "manual"

// Adopt takes the policy stored in the KV at rev as the model's. If it is
// the controller's own latest decision (same Seq and precision, not set by
// hand) only the revision is recorded. Otherwise — a manual change, or a decision made
// elsewhere that this controller has not reached or could not make — its
// state restarts from the policy: statistics cleared, position p.Seq. It
// returns the sequence to replay from when the controller had already gone
// past p.Seq (the caller must re-deliver the model's reports from there),
// else 0.
func (c *Controller) Adopt(rev uint64, p gearbox.PrecisionPolicy) (replayFrom uint64) {
	s := c.state(p.Model)
	if rev <= s.rev {
		return 0 // an older revision than the one held
	}
	if p.By != ManualBy && s.policy.Model != "" && p.Seq == s.policy.Seq && p.Precision == s.policy.Precision {
		s.rev = rev
		return 0
	}
	behind := s.pos > p.Seq
	s.policy, s.rev = p, rev
	s.windows = map[precision.Format]*window{}
	s.cold = false
	s.pos = p.Seq
	s.hold, s.why = "", ""
	if behind {
		return p.Seq + 1
	}
	return 0
}

// Observe feeds the report at stream sequence seq, stored at stream time
// at. It returns the policy change the report causes, if any; the caller
// writes it (compare-and-swap on Decision.Rev) and feeds back the outcome
// with Written or Adopt. Without a change, Holding says why. Reports at or
// before the model's position are ignored (already seen, or before the
// policy in force).
func (c *Controller) Observe(seq uint64, at time.Time, r *gearbox.QualityReport) *Decision {
	s := c.state(r.Model)
	if seq <= s.pos {
		return nil
	}
	s.pos = seq
	s.ladder, s.maxError, s.metric = r.Ladder, r.MaxError, r.Metric
	if s.policy.Model == "" {
		s.policy = initialPolicy(r)
	}
	var ruled []precision.Format
	if c.add(s, r.Served, Observation{Seq: seq, Worker: r.Worker, Error: r.Error(&r.ServedMetrics), NonFinite: r.ServedMetrics.NonFinite}) {
		ruled = append(ruled, r.Served)
	}
	if m := r.CandidateMetrics; r.Candidate != "" && m != nil {
		if c.add(s, r.Candidate, Observation{Seq: seq, Worker: r.Worker, Error: r.Error(m), NonFinite: m.NonFinite}) {
			ruled = append(ruled, r.Candidate)
		}
	}
	// Why, from the windows as they stand (a change clears them).
	why := map[precision.Format]string{}
	var ev *gearbox.Evidence
	for _, f := range ruled {
		e := c.window(s, f).evidence(f)
		why[f] = ruledOut(f, e)
		if ev == nil {
			ev = e
		}
	}
	d := c.decide(s, seq, at)
	if len(ruled) == 0 {
		return d
	}
	if d == nil {
		// Ruling a precision out is a change of its own, even when the
		// precision stays: stored, it outlives the reports it rests on.
		return c.change(s, seq, at, s.policy.Precision, ev, joinWhy(ruled, why, ""))
	}
	// A step away from a precision ruled out says so; it names any other
	// precision the report rules out too.
	if more := joinWhy(ruled, why, d.From); more != "" {
		d.Policy.Reason += "; " + more
		s.policy.Reason = d.Policy.Reason
	}
	return d
}

// joinWhy joins the reasons of the precisions ruled out, but skip's.
func joinWhy(ruled []precision.Format, why map[precision.Format]string, skip precision.Format) string {
	var parts []string
	for _, f := range ruled {
		if f != skip {
			parts = append(parts, why[f])
		}
	}
	return strings.Join(parts, "; ")
}

// ruledOut says why f is ruled out.
func ruledOut(f precision.Format, e *gearbox.Evidence) string {
	return fmt.Sprintf("%s ruled out: %d non-finite outputs where fp32 is finite (report %d)", f, e.NonFinite, e.LastSeq)
}

// initialPolicy is the policy of a model with no KV entry: the manifest's.
func initialPolicy(r *gearbox.QualityReport) gearbox.PrecisionPolicy {
	return gearbox.PrecisionPolicy{
		Model:     r.Model,
		Precision: r.Initial,
		Floor:     r.Ladder[len(r.Ladder)-1],
		Ceiling:   r.Ladder[0],
		Reason:    "initial (manifest)",
	}
}

// add records o for precision p; it reports whether o rules p out now.
func (c *Controller) add(s *modelState, p precision.Format, o Observation) bool {
	w, ok := s.windows[p]
	if !ok {
		w = &window{}
		s.windows[p] = w
	}
	w.add(o, c.rules.Window)
	if o.NonFinite > 0 && !slices.Contains(s.policy.Excluded, p) {
		s.policy.Excluded = append(s.policy.Excluded, p)
		return true
	}
	return false
}

// decide applies the rules after an observation at seq: a change, or nil
// with the model's hold set.
func (c *Controller) decide(s *modelState, seq uint64, at time.Time) *Decision {
	pol := &s.policy
	maxErr := pol.MaxError
	if !(maxErr > 0) {
		maxErr = s.maxError
	}
	ladder := s.ladder
	cur := pol.Precision
	if !slices.Contains(ladder, cur) {
		return s.holds(HoldOffLadder, fmt.Sprintf("%s is not on the model's ladder %v: the controller leaves it", cur, ladder))
	}
	lo, hi := slices.Index(ladder, pol.Ceiling), slices.Index(ladder, pol.Floor)
	if lo < 0 {
		lo = 0
	}
	if hi < 0 {
		hi = len(ladder) - 1
	}
	i := slices.Index(ladder, cur)
	excluded := func(f precision.Format) bool { return slices.Contains(pol.Excluded, f) }
	ev := c.window(s, cur).evidence(cur)

	// Up, at once: the served precision breaches the target, is ruled
	// out, or sits outside [floor, ceiling].
	var up string
	switch {
	case i < lo:
		return c.change(s, seq, at, ladder[lo], ev, fmt.Sprintf("%s is above the ceiling %s", cur, pol.Ceiling))
	case i > hi:
		up = fmt.Sprintf("%s is below the floor %s", cur, pol.Floor)
	case excluded(cur):
		up = fmt.Sprintf("%s is ruled out (%d non-finite outputs where fp32 is finite)", cur, ev.NonFinite)
	case ev.Samples > 0 && ev.UpperBound > maxErr:
		up = fmt.Sprintf("%s %s upper bound %.4g over %d reports exceeds max_error %.4g", cur, s.errName(), ev.UpperBound, ev.Samples, maxErr)
	}
	if up != "" {
		j := min(i-1, hi)
		for j > lo && excluded(ladder[j]) {
			j--
		}
		if j < lo || ladder[j] == cur {
			return s.holds(HoldCeiling, fmt.Sprintf("%s, but nothing more accurate is allowed (ceiling %s, ruled out %v)", up, pol.Ceiling, pol.Excluded))
		}
		return c.change(s, seq, at, ladder[j], ev, up)
	}

	// Down, with evidence: the next cheaper rung within the floor has
	// enough candidate observations, all comfortably inside the target, and
	// the cooldown since the last change has passed.
	if i+1 > hi {
		return s.holds(HoldFloor, fmt.Sprintf("%s is the floor", cur))
	}
	cand := ladder[i+1]
	if excluded(cand) {
		return s.holds(HoldRuledOut, fmt.Sprintf("%s, the next cheaper rung, is ruled out (non-finite outputs where fp32 is finite); a manual set clears it", cand))
	}
	w := c.window(s, cand)
	cev := w.evidence(cand)
	need := c.rules.MinSamples
	if s.cold {
		need = c.rules.Window
	}
	switch {
	case w.seen < need || cev.Samples < c.rules.MinSamples:
		return s.holds(HoldEvidence, fmt.Sprintf("%s has %d of the %d reports a step down needs", cand, w.seen, need))
	case cev.UpperBound > c.rules.Margin*maxErr:
		return s.holds(HoldMargin, fmt.Sprintf("%s %s upper bound %.4g over %d reports exceeds %.2g x max_error %.4g",
			cand, s.errName(), cev.UpperBound, cev.Samples, c.rules.Margin, maxErr))
	case !pol.UpdatedAt.IsZero() && at.Sub(pol.UpdatedAt) < c.rules.Cooldown:
		return s.holds(HoldCooldown, fmt.Sprintf("%s qualifies; %v of the %v cooldown since the last change has passed",
			cand, at.Sub(pol.UpdatedAt).Round(time.Millisecond), c.rules.Cooldown))
	}
	return c.change(s, seq, at, cand, cev, fmt.Sprintf(
		"%s %s upper bound %.4g over %d reports is within %.2g x max_error %.4g",
		cand, s.errName(), cev.UpperBound, cev.Samples, c.rules.Margin, maxErr))
}

// errName is what the reasons call the model's error: "kl" for a
// language model judged by KL, else "error" (relative L2).
func (s *modelState) errName() string {
	if s.metric == gearbox.MetricKL {
		return gearbox.MetricKL
	}
	return "error"
}

// holds records why the model's precision stays, and returns no decision.
func (s *modelState) holds(h Hold, why string) *Decision {
	s.hold, s.why = h, why
	return nil
}

func (c *Controller) window(s *modelState, p precision.Format) *window {
	if w, ok := s.windows[p]; ok {
		return w
	}
	return &window{}
}

// change makes the model's policy p from seq on, and resets its statistics.
func (c *Controller) change(s *modelState, seq uint64, at time.Time, p precision.Format, ev *gearbox.Evidence, reason string) *Decision {
	old := s.policy
	next := old
	next.Precision = p
	next.Reason = reason
	next.Evidence = ev
	next.Measured = maps.Clone(old.Measured)
	if next.Measured == nil {
		next.Measured = map[precision.Format]float64{}
	}
	for f, w := range s.windows {
		if e := w.evidence(f); e.Samples > 0 && e.NonFinite == 0 {
			next.Measured[f] = e.UpperBound
		}
	}
	next.Excluded = slices.Clone(old.Excluded)
	next.Seq = seq
	next.UpdatedAt = at.UTC()
	d := &Decision{Policy: next, Rev: s.rev, From: old.Precision}
	s.policy = next
	s.windows = map[precision.Format]*window{}
	s.cold = false
	s.hold, s.why = "", ""
	return d
}

// Forget drops what the controller holds for model (its KV key was
// deleted): the next report starts it again from the manifest's policy.
func (c *Controller) Forget(model string) {
	s := c.state(model)
	pos := s.pos
	*s = modelState{windows: map[precision.Format]*window{}, pos: pos}
}

// Written records that the decision's policy was stored at rev.
func (c *Controller) Written(d *Decision, rev uint64) {
	s := c.state(d.Policy.Model)
	if s.policy.Seq == d.Policy.Seq {
		s.rev = rev
	}
}
