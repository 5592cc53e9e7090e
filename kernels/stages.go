package kernels

import "time"

// StageTimer is the optional ability of a Backend to time its Forward
// calls, stage by stage, and the device's busy time for them, found by type
// assertion:
//
//	st, ok := backend.(kernels.StageTimer)
//
// gearbox bench e2e reads it around its bare loop: the stages say where a
// Forward's host time goes, and the busy time what the device alone would
// allow (docs/benchmarks.md, "The device's ceiling").
//
// TimeStages turns the timing on or off and returns what was timed since
// its previous call, the sums starting again from zero. Timing is off
// until it is turned on, and costs Forward nothing measurable then. A
// Forward running while TimeStages is called may be counted in either
// period, or partly in each: call it between calls for exact sums.
type StageTimer interface {
	TimeStages(on bool) StageTimes
}

// StageTimes are sums over Batches Forward calls.
type StageTimes struct {
	// Batches is how many Forward calls were timed.
	Batches int64
	// Total is their wall time, from entry to return, summed over the
	// calls: with several concurrent callers it exceeds the elapsed time.
	Total time.Duration
	// Stages split Total, in the order a call passes them; each backend
	// names its own (the CUDA backend's: docs/benchmarks.md). The last is
	// "other": Total less the rest, so they add up to Total.
	Stages []Stage
	// DeviceBusy is the device's time on DeviceBatches of the calls,
	// measured on the device (CUDA events); zero with DeviceBatches 0
	// where the backend has no device clock (the CPU).
	DeviceBusy    time.Duration
	DeviceBatches int64
}

// Stage is one stage's time, summed over the calls.
type Stage struct {
	Name string
	Time time.Duration
}
