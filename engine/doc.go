// Package engine runs causal language models' sequences in continuous
// batches over a paged KV cache: the unit of batching is one engine step,
// not one job.
//
// # Two layers
//
// Scheduler is the deterministic core: it owns the block allocator and the
// queues of sequences, and, told the time, plans each step and applies its
// outputs. It starts no goroutine and calls no backend, so tests drive it
// with explicit times and made-up outputs. Engine runs a Scheduler for one
// (model, precision) on a kernels.LM backend: a goroutine that plans a
// step, runs it, applies it, and repeats while there is work.
//
// # A step
//
//  1. Sequences past their deadline finish ("deadline"), keeping what they
//     generated.
//  2. Every running sequence decodes one token. A sequence that needs a new
//     block when none is free preempts the running sequence admitted last
//     (lowest priority first): its blocks are freed and it goes back to the
//     head of the waiting queue, to be prefilled again from its prompt and
//     the tokens it had generated (recompute). Seeded sampling is a function
//     of (seed, position), so a preempted sequence continues exactly as it
//     would have.
//  3. Waiting sequences are prefilled, highest priority first (then oldest),
//     in chunks, until the step's token budget or the free blocks run out.
//     The chunk that reaches a prompt's end samples its first token.
//
// Decode goes first, so running sequences keep their inter-token latency
// while prompts queue; a long prompt is spread over several steps.
//
// # Prefix sharing
//
// Full blocks are named by a hash chain over their tokens (prefix.go) and
// counted by reference (blocks.go): a sequence starting to prefill takes
// the written blocks of its leading tokens that another sequence holds or
// left cached, and prefills from the first position they do not hold. It
// waits while another sequence is writing the next block it would take.
// Blocks nobody holds stay cached, least recently released evicted first
// when free blocks run out. Config.NoPrefixCache turns it off.
//
// # Tasks
//
// generate decodes until an end-of-sequence token, max tokens, the
// context, a stop the caller detects (a stop string), or the deadline.
// embed prefills the prompt and returns the last row's final hidden state.
// score prefills the prompt and returns each token's log-probability given
// the ones before it.
package engine
