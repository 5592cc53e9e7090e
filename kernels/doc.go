// Package kernels is the contract between the worker and the devices it
// runs models on: the Backend interface every backend implements, the
// optional abilities some add, and a registry through which backends make
// themselves available.
//
// # The contract
//
// Backend is what every backend implements: Name, Capabilities, Forward,
// Evict and Close, documented method by method. Its methods are safe for
// concurrent use. Further abilities are optional interfaces, found by
// type assertion as database/sql finds a driver's optional interfaces:
//
//	Referencer  Reference: a forward pass in float64, the quality loop's
//	            yardstick (the CPU backend)
//	LM          NewKVCache, Step, EvictLM: causal language models over a
//	            paged KV cache (the CPU backend)
//	StageTimer  TimeStages: Forward's host time stage by stage and the
//	            device's busy time, for gearbox bench e2e (the CUDA backend)
//	IntoForwarder ForwardInto: Forward into the caller's reused slice, no
//	            allocation per batch (the CUDA backend)
//
// A wrapper that embeds a Backend keeps every method of Backend but hides
// the optional abilities, as a wrapped database/sql driver would; it must
// implement them itself to pass them on.
//
// Capabilities and Evict are in Backend rather than optional because every
// backend can answer them and their absence is a silent error: a backend
// that did not say what it runs would be taken to run everything natively,
// and one that could not drop a model's cached weights would hold every
// version of a model that is pushed again. Supports reads Capabilities one
// format at a time.
//
// # Errors
//
// Forward and LM.Step fail with an error wrapping ErrUnsupported for a
// precision the backend does not run (never substituting another), LM.Step
// with ErrInvalidBatch for a batch that breaks Seq's rules, and Open with
// ErrNoBackend for a device kind no registered backend serves. Malformed
// models and inputs are plain errors naming the field (CheckForward,
// CheckStep), and a context that ends is ctx.Err().
//
// # Model versions
//
// Backends cache per-model state (converted or uploaded weights, captured
// graphs) keyed by the model's pointer: models are immutable once loaded,
// and a new version of a model is a new pointer. The state stays until
// Evict (EvictLM for a language model) or Close. The caller that swaps in a
// new version evicts the old one once no forward pass of it runs or will
// start: an evicted model that is run again is converted again and cached
// again (package worker counts each version's users to know when).
//
// # Registry
//
// Backends register in init, like database/sql drivers, and only package
// main blank-imports them: kernels/cpu (pure Go, always present) and
// kernels/cuda. Open("auto") opens CUDA device 0 when a CUDA backend is
// registered and the device opens, otherwise the CPU, and says why it fell
// back.
//
// A kind with several devices also registers a Counter (RegisterCounter),
// which Count reads. OpenWorkers opens the devices of one process's
// workers: Place maps a spec and a worker count to a device per worker
// ("cuda" and "auto" spread the workers over every visible GPU, "cuda:N"
// pins them all to one), and each device gets one backend, which the
// workers on it share.
//
// # Conformance
//
// Package kernels/kerneltest is the conformance suite: every backend calls
// kerneltest.Run from its own tests (it checks the LM ability too where the
// backend has it), against the float64 reference with per-precision
// tolerances, and kerneltest.RunRegistry for its kind.
package kernels
