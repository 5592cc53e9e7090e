// Package lmbench measures the quality loop's headline on language models:
// a mixed generate workload served through the queue by the real worker,
// once with every job at precision auto (the quality loop live: sampled
// generations re-run teacher-forced, KL reports, the controller moving
// each model to the cheapest precision within its target) and once with
// the same jobs pinned at bf16. It backs "gearbox bench lm".
//
// One run: an embedded NATS server with JetStream file storage (a
// temporary directory, or Config.StoreDir); each model's checkpoint
// directory pushed to the object store with lm.Push, and fetched from
// there by the workers on first use, as a deployment's workers do; one job
// list drawn from a seeded RNG (a model, a prompt of random token ids
// below its vocabulary, a max_tokens), the same in both phases.
//
// Each phase starts its own workers on the shared backend and warms them
// up, untimed, with one short job per model and precision it may serve
// (the fetch, each engine's start and each precision's weight conversion
// are then paid before the clock); then it times the jobs from the first
// publish to the last result, keeping at most Config.InFlight jobs
// published and unanswered, and reads the GPU's energy counter around
// that. The auto phase sets each model's policy by hand (quality.SetPolicy,
// as `gearbox policy set` does): its target as max_error, its precision at
// Config.Start (bf16: where the pinned phase stays), the whole ladder
// allowed; before its workers start, so that they serve it from their
// first job, and again once they are warm, so that the controller's
// evidence and cooldown start with the timed jobs. Its workers run the
// quality loop with
// Config.Quality; the pinned phase's run none (a deployment pinned at one
// precision has no use for it).
//
// The report gives per phase jobs/s, output tokens/s and joules per 1,000
// jobs (absent without an energy counter: unknown, not zero), the
// precision that served each model's jobs in each of Config.Slices slices
// of the phase, the policy changes, and the auto phase's quality windows
// against each model's target: its reports cut into windows of the
// controller's window size (per model, role and precision, in the order
// they came), and the window each controller change rested on. A window of
// a served precision whose largest KL is over the target is a violation:
// a job served over it, or a step up (the controller measured the rung it
// served over the target). The headline is the ratio auto / bf16 of jobs/s
// and of joules per 1,000 jobs.
//
// Config.Phases picks the phases; PhaseBare adds the bare engine loop: the
// pinned phase's jobs made into the engine sequences the worker would make
// (worker.Models.LMSeq) and run on the engines a worker would start
// (worker.NewLMEngine), with no queue. The report's Overhead is the pinned
// phase over it, and counts the jobs that generated the same tokens in
// both. Before the pinned phase a warm pass runs the bare loop once,
// untimed (unless Config.NoWarmPass), so that per-shape set-up is paid by
// neither clock. Each phase also reports what its engines did (Engines:
// steps, tokens a step, time in steps, idle and between steps) and how a
// job's time split: to its engine, in it, and back to the producer.
package lmbench
