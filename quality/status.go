package quality

import (
	"github.com/gearbox-inference/gearbox"
)

// Hold says why the controller leaves a model's precision where it is. The
// values are stable: they label the gearbox_policy_hold metric and appear
// in logs and in `gearbox policy get`.
type Hold string

// The reasons the controller holds a precision, in the order it checks
// them.
const (
	// HoldOffLadder: the policy names a precision off the model's ladder
	// (set by hand); the controller leaves it alone.
	HoldOffLadder Hold = "off_ladder"
	// HoldCeiling: the served precision should step up (over max_error, or
	// ruled out) but nothing more accurate is allowed: it is at the
	// ceiling, or every rung above is ruled out.
	HoldCeiling Hold = "ceiling"
	// HoldFloor: the precision is the floor; nothing cheaper is allowed.
	HoldFloor Hold = "floor"
	// HoldRuledOut: the next cheaper rung is ruled out.
	HoldRuledOut Hold = "ruled_out"
	// HoldEvidence: the next cheaper rung has fewer observations since the
	// last change than a step down needs.
	HoldEvidence Hold = "evidence"
	// HoldMargin: the next cheaper rung's upper bound is over Margin ×
	// max_error.
	HoldMargin Hold = "margin"
	// HoldCooldown: a step down waits for the cooldown since the last
	// change.
	HoldCooldown Hold = "cooldown"
)

// Holds lists every Hold.
var Holds = []Hold{HoldOffLadder, HoldCeiling, HoldFloor, HoldRuledOut, HoldEvidence, HoldMargin, HoldCooldown}

// Status is the controller's view of one model at its position in the
// stream: the policy in force and, between changes, why it holds.
type Status struct {
	// Policy is the policy in force: the stored one, or the manifest's
	// (Rev 0) while the model has none.
	Policy gearbox.PrecisionPolicy `json:"policy"`
	Rev    uint64                  `json:"revision"`
	// Position is the last report sequence considered.
	Position uint64 `json:"position"`
	// Hold and Reason say why the controller holds the precision; Hold is
	// empty before the first report after the policy took effect.
	Hold   Hold   `json:"hold,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Cold is set while a step down needs a full window (see
	// docs/quality.md).
	Cold bool `json:"cold,omitempty"`
	// Windows are the observations per precision since the policy took
	// effect, most accurate first.
	Windows []gearbox.Evidence `json:"windows,omitempty"`
	// Pending lists changes that Inspect's replay made and the KV does not
	// hold: a write in flight, no controller running, or rules other than
	// the workers'.
	Pending []gearbox.PrecisionPolicy `json:"pending,omitempty"`
}
