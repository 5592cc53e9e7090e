package kernels

import (
	"cmp"
	"math"
	"slices"
)

// Sampling is defined here, in plain Go, so that every backend picks the
// same token from the same logits: the CPU backend calls these functions,
// and a GPU backend either does (copying the logits back) or reproduces
// them and is tested against them.

// splitmix64 constants (Steele, Lea and Flood, "Fast splittable
// pseudorandom number generators", 2014; the reference code is
// https://prng.di.unimi.it/splitmix64.c).
const (
	splitmixGamma = 0x9e3779b97f4a7c15
	splitmixMul1  = 0xbf58476d1ce4e5b9
	splitmixMul2  = 0x94d049bb133111eb
)

// SampleUniform returns the uniform number in [0, 1) that seeded sampling
// draws for the token at position pos of a sequence with seed seed. It is
// counter-based — a pure function of (seed, pos) — so a sequence samples
// the same tokens whatever it is batched with, and after a preemption and
// recompute. Exactly:
//
//	x := seed + (uint64(pos)+1) * 0x9e3779b97f4a7c15   // mod 2^64
//	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
//	x = (x ^ x>>27) * 0x94d049bb133111eb
//	x ^= x >> 31
//	u := float64(x>>11) * 0x1p-53
//
// that is, output pos (counting from 0) of splitmix64 seeded with seed,
// scaled to 53 bits.
func SampleUniform(seed uint64, pos int) float64 {
	x := seed + (uint64(pos)+1)*splitmixGamma
	x = (x ^ x>>30) * splitmixMul1
	x = (x ^ x>>27) * splitmixMul2
	x ^= x >> 31
	return float64(x>>11) * 0x1p-53
}

// Sample picks the token to follow a row whose logits are given (one per
// token id), by s, for position pos (the position the new token will
// have). The algorithm, in float64 from the float32 logits:
//
//  1. Temperature 0: the id of the largest logit, the lowest id on ties.
//  2. Order the ids by logit, largest first, ties by lower id; with
//     TopK > 0 keep the first TopK.
//  3. w_i = exp((l_i − l_max) / T) for the kept ids, in that order.
//  4. With 0 < TopP < 1, keep the shortest prefix whose running sum of w
//     reaches TopP × Σw (at least one id).
//  5. Draw u = SampleUniform(s.Seed, pos); return the first kept id at
//     which the running sum of w exceeds u × Σw (over the kept ids), or
//     the last kept id.
//
// Sums run in the order of step 2. Another implementation matches this
// one exactly unless its exp differs in the last bit at the point where u
// falls within about 1e-16 of a boundary.
func Sample(logits []float32, s Sampling, pos int) int32 {
	if s.Temperature == 0 || s.TopK == 1 {
		return Argmax(logits)
	}
	ids := sortedIDs(logits, s.TopK)
	t := float64(s.Temperature)
	hi := float64(logits[ids[0]])
	w := make([]float64, len(ids))
	var total float64
	for i, id := range ids {
		w[i] = math.Exp((float64(logits[id]) - hi) / t)
		total += w[i]
	}
	if s.TopP > 0 && s.TopP < 1 {
		limit, run := float64(s.TopP)*total, 0.0
		for i := range w {
			run += w[i]
			if run >= limit {
				w, ids = w[:i+1], ids[:i+1]
				break
			}
		}
		total = run
	}
	target, run := SampleUniform(s.Seed, pos)*total, 0.0
	for i := range w {
		run += w[i]
		if run > target {
			return ids[i]
		}
	}
	return ids[len(ids)-1]
}

// Argmax is the id of the largest logit, the lowest id on ties (greedy
// decoding). A NaN logit is never chosen over a number.
func Argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] || logits[best] != logits[best] {
			best = i
		}
	}
	return int32(best)
}

// sortedIDs returns the token ids ordered by logit, largest first, ties by
// lower id; with k > 0, only the first k.
func sortedIDs(logits []float32, k int) []int32 {
	ids := make([]int32, len(logits))
	for i := range ids {
		ids[i] = int32(i)
	}
	byLogit := func(a, b int32) int {
		return cmp.Or(cmp.Compare(logits[b], logits[a]), cmp.Compare(a, b))
	}
	if k <= 0 || k > 64 || k >= len(ids) {
		slices.SortFunc(ids, byLogit)
		if k > 0 && k < len(ids) {
			ids = ids[:k]
		}
		return ids
	}
	// For a small k, keep the best k in a sorted prefix: one pass over the
	// vocabulary, far cheaper than sorting it.
	top := make([]int32, 0, k+1)
	for _, id := range ids {
		if len(top) == k && byLogit(id, top[k-1]) >= 0 {
			continue
		}
		at, _ := slices.BinarySearchFunc(top, id, byLogit)
		top = slices.Insert(top, at, id)
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

// LogSumExp returns log Σ exp(logits), in float64: the log-probability of
// token i is logits[i] − LogSumExp(logits).
func LogSumExp(logits []float32) float64 {
	hi := math.Inf(-1)
	for _, v := range logits {
		hi = math.Max(hi, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - hi)
	}
	return hi + math.Log(sum)
}

// TopLogprobs returns the n most likely tokens and their log-probabilities
// (lse is LogSumExp(logits)), most likely first, ties to the lowest id.
func TopLogprobs(logits []float32, lse float64, n int) []TokenLogprob {
	if n <= 0 {
		return nil
	}
	ids := sortedIDs(logits, n)
	out := make([]TokenLogprob, len(ids))
	for i, id := range ids {
		out[i] = TokenLogprob{Token: id, Logprob: float32(float64(logits[id]) - lse)}
	}
	return out
}
