package quality

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// Rules tune the controller. Zero fields take the defaults in their
// comments.
type Rules struct {
	// Window is how many observations per (model, precision) the
	// statistics keep, newest first (default 50).
	Window int
	// MinSamples is how many candidate observations a step down needs
	// (default 20, GEARBOX_QUALITY_MIN_SAMPLES); at most Window.
	MinSamples int
	// Margin: a step down needs the candidate's upper bound ≤ Margin ×
	// max_error (default 0.5).
	Margin float64
	// Cooldown is the least stream time between a change and a step down
	// (default 30 s). Steps up are never delayed.
	Cooldown time.Duration
}

// ErrInvalidRules is wrapped by Rules.Validate's errors.
var ErrInvalidRules = errors.New("quality: invalid rules")

// WithDefaults returns r with zero fields set to their defaults.
func (r Rules) WithDefaults() Rules {
	if r.Window == 0 {
		r.Window = 50
	}
	if r.MinSamples == 0 {
		r.MinSamples = 20
	}
	if r.Margin == 0 {
		r.Margin = 0.5
	}
	if r.Cooldown == 0 {
		r.Cooldown = 30 * time.Second
	}
	return r
}

// Validate reports the first unusable field (after defaults).
func (r Rules) Validate() error {
	r = r.WithDefaults()
	switch {
	case r.Window < 1:
		return fmt.Errorf("%w: window %d must be ≥ 1", ErrInvalidRules, r.Window)
	case r.MinSamples < 1 || r.MinSamples > r.Window:
		return fmt.Errorf("%w: min samples %d must be 1 to the window %d", ErrInvalidRules, r.MinSamples, r.Window)
	case !(r.Margin > 0 && r.Margin <= 1):
		return fmt.Errorf("%w: margin %g must be in (0, 1]", ErrInvalidRules, r.Margin)
	case r.Cooldown < 0:
		return fmt.Errorf("%w: cooldown %v must be ≥ 0", ErrInvalidRules, r.Cooldown)
	}
	return nil
}

// Observation is one measured error at one precision: from a report's
// served or candidate metrics.
type Observation struct {
	Seq       uint64
	Worker    string
	RelL2     float64
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
		e.UpperBound = max(e.UpperBound, o.RelL2)
		sum += o.RelL2
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
	policy gearbox.Policy
	rev    uint64 // KV revision of policy; 0 when the key does not exist
	pos    uint64 // last stream sequence considered
	// cold: reports between the policy's Seq and the first one replayed may
	// be lost (the stream dropped them), so windows may be short of what
	// other workers hold: a step down then waits for a full window.
	cold     bool
	windows  map[precision.Format]*window
	ladder   []precision.Format
	maxError float64 // the manifest's, from the newest report
}

// Decision is a policy change: the new policy and the revision it replaces
// (0: the key does not exist yet).
type Decision struct {
	Policy gearbox.Policy
	Rev    uint64
	// Up is true for a step up (to a more accurate precision).
	Up bool
}

// Controller applies Rules to a stream of reports. It is a pure state
// machine: no clock, no I/O, not safe for concurrent use. Feed it every
// report in stream order (Observe) and every policy read from the KV
// (Adopt); Runner does that against NATS.
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

// Policy returns the model's current policy and its KV revision, or false
// when the controller knows nothing of the model.
func (c *Controller) Policy(model string) (gearbox.Policy, uint64, bool) {
	s, ok := c.models[model]
	if !ok || s.policy.Model == "" {
		return gearbox.Policy{}, 0, false
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

// SetCold marks model's statistics as possibly incomplete (see
// modelState.cold) until a change or an Adopt resets them.
func (c *Controller) SetCold(model string) { c.state(model).cold = true }

func (c *Controller) state(model string) *modelState {
	s, ok := c.models[model]
	if !ok {
		s = &modelState{windows: map[precision.Format]*window{}, cold: c.coldStart}
		c.models[model] = s
	}
	return s
}

// ManualBy is Policy.By of a policy set by hand.
const ManualBy = "manual"

// Adopt takes the policy stored in the KV at rev as the model's. If it is
// the controller's own latest decision (same Seq and precision, not set by
// hand) only the revision is recorded. Otherwise — a manual change, or a decision made
// elsewhere that this controller has not reached or could not make — its
// state restarts from the policy: statistics cleared, position p.Seq. It
// returns the sequence to replay from when the controller had already gone
// past p.Seq (the caller must re-deliver the model's reports from there),
// else 0.
func (c *Controller) Adopt(rev uint64, p gearbox.Policy) (replayFrom uint64) {
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
	if behind {
		return p.Seq + 1
	}
	return 0
}

// Observe feeds the report at stream sequence seq, stored at stream time
// at. It returns the policy change the report causes, if any; the caller
// writes it (compare-and-swap on Decision.Rev) and feeds back the outcome
// with Written or Adopt. Reports at or before the model's position are
// ignored (already seen, or before the policy in force).
func (c *Controller) Observe(seq uint64, at time.Time, r *gearbox.QualityReport) *Decision {
	s := c.state(r.Model)
	if seq <= s.pos {
		return nil
	}
	s.pos = seq
	s.ladder, s.maxError = r.Ladder, r.MaxError
	if s.policy.Model == "" {
		s.policy = initialPolicy(r)
	}
	c.add(s, r.Served, Observation{Seq: seq, Worker: r.Worker, RelL2: r.ServedMetrics.RelL2, NonFinite: r.ServedMetrics.NonFinite})
	if r.Candidate != "" && r.CandidateMetrics != nil {
		m := r.CandidateMetrics
		c.add(s, r.Candidate, Observation{Seq: seq, Worker: r.Worker, RelL2: m.RelL2, NonFinite: m.NonFinite})
	}
	return c.decide(s, seq, at)
}

// initialPolicy is the policy of a model with no KV entry: the manifest's.
func initialPolicy(r *gearbox.QualityReport) gearbox.Policy {
	return gearbox.Policy{
		Model:     r.Model,
		Precision: r.Initial,
		Floor:     r.Ladder[len(r.Ladder)-1],
		Ceiling:   r.Ladder[0],
		Reason:    "initial (manifest)",
	}
}

func (c *Controller) add(s *modelState, p precision.Format, o Observation) {
	w, ok := s.windows[p]
	if !ok {
		w = &window{}
		s.windows[p] = w
	}
	w.add(o, c.rules.Window)
	if o.NonFinite > 0 && !slices.Contains(s.policy.Excluded, p) {
		s.policy.Excluded = append(s.policy.Excluded, p)
	}
}

// decide applies the rules after an observation at seq.
func (c *Controller) decide(s *modelState, seq uint64, at time.Time) *Decision {
	pol := &s.policy
	maxErr := pol.MaxError
	if !(maxErr > 0) {
		maxErr = s.maxError
	}
	ladder := s.ladder
	cur := pol.Precision
	if !slices.Contains(ladder, cur) {
		return nil // a policy off the model's ladder (set by hand): leave it
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

	// Up, at once: the served precision breaches the target, produced
	// non-finite values, or sits outside [floor, ceiling].
	var up string
	switch {
	case i < lo:
		return c.change(s, seq, at, ladder[lo], false, ev, fmt.Sprintf("%s is above the ceiling %s", cur, pol.Ceiling))
	case i > hi:
		up = fmt.Sprintf("%s is below the floor %s", cur, pol.Floor)
	case excluded(cur):
		up = fmt.Sprintf("%s produced %d non-finite values", cur, ev.NonFinite)
	case ev.Samples > 0 && ev.UpperBound > maxErr:
		up = fmt.Sprintf("%s error upper bound %.4g over %d reports exceeds max_error %.4g", cur, ev.UpperBound, ev.Samples, maxErr)
	}
	if up != "" {
		j := min(i-1, hi)
		for j > lo && excluded(ladder[j]) {
			j--
		}
		if j < lo || ladder[j] == cur {
			return nil // already at the ceiling: nothing more accurate to go to
		}
		return c.change(s, seq, at, ladder[j], true, ev, up)
	}

	// Down, with evidence: the next cheaper rung within the floor has
	// enough candidate observations, all comfortably inside the target, and
	// the cooldown since the last change has passed.
	if i+1 > hi || excluded(ladder[i+1]) {
		return nil
	}
	cand := ladder[i+1]
	w := c.window(s, cand)
	cev := w.evidence(cand)
	need := c.rules.MinSamples
	if s.cold {
		need = c.rules.Window
	}
	switch {
	case w.seen < need || cev.Samples < c.rules.MinSamples:
		return nil
	case cev.UpperBound > c.rules.Margin*maxErr:
		return nil
	case !pol.UpdatedAt.IsZero() && at.Sub(pol.UpdatedAt) < c.rules.Cooldown:
		return nil
	}
	return c.change(s, seq, at, cand, false, cev, fmt.Sprintf(
		"%s error upper bound %.4g over %d reports is within %.2g × max_error %.4g",
		cand, cev.UpperBound, cev.Samples, c.rules.Margin, maxErr))
}

func (c *Controller) window(s *modelState, p precision.Format) *window {
	if w, ok := s.windows[p]; ok {
		return w
	}
	return &window{}
}

// change makes the model's policy p from seq on, and resets its statistics.
func (c *Controller) change(s *modelState, seq uint64, at time.Time, p precision.Format, up bool, ev *gearbox.Evidence, reason string) *Decision {
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
	d := &Decision{Policy: next, Rev: s.rev, Up: up}
	s.policy = next
	s.windows = map[precision.Format]*window{}
	s.cold = false
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
