// Package quality closes Gearbox's precision loop: it samples batches,
// re-runs a random subset of their rows at the reference and at the next
// cheaper rung of the model's ladder (in shadow, not served), publishes a
// gearbox.QualityReport per check, and runs the controller that turns the
// reports of every worker into one gearbox.PrecisionPolicy per model in
// the KV bucket gearbox_policy.
//
// The controller is deterministic: every worker replays the GEARBOX_QUALITY
// stream in stream order through the same rules (Rules), with no wall clock
// in a decision (cooldowns are measured in the reports' stream timestamps),
// so every worker reaches the same decision at the same report. Each writes
// it by compare-and-swap on the policy's KV revision, so exactly one write
// lands; the others see the identical policy come back through their watch.
// A policy records the stream sequence it took effect at (Seq), and
// the controller's statistics restart there, so a worker that starts late
// rebuilds exactly the state of the others from the policy and the reports
// after it. Between changes the controller says why it holds (Hold), in
// logs, metrics and `gearbox policy get` (Inspect).
//
// Only values the fp32 run and the reference both carry as finite float32
// are judged (Compare): an output the input drives beyond float32 counts
// against no precision. See docs/quality.md.
package quality
