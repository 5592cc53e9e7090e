package lm

import "math"

// RoPE rotates each head's pairs (x[i], x[i+HeadDim/2]) by the angle
// pos × invFreq[i] (transformers' rotate_half convention):
//
//	y[i]           = x[i]·cos − x[i+d/2]·sin
//	y[i+d/2]       = x[i+d/2]·cos + x[i]·sin
//
// invFreq[i] = θ^(−2i/d) for i < d/2 (d = HeadDim, θ = RopeTheta), then,
// with llama3 scaling (transformers' _compute_llama3_parameters), with
// wavelength λ = 2π / invFreq[i], L = OriginalMaxPositions:
//
//	λ < L / HighFreqFactor:            unchanged
//	λ > L / LowFreqFactor:             invFreq / Factor
//	otherwise, s = (L/λ − LowFreqFactor) / (HighFreqFactor − LowFreqFactor):
//	                                   (1 − s)·invFreq/Factor + s·invFreq

// InvFreq64 returns RoPE's HeadDim/2 inverse frequencies computed exactly
// (in float64): the references' definition.
func (c *Config) InvFreq64() []float64 {
	d := c.HeadDim
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(d))
	}
	s := c.RopeScaling
	if s == nil {
		return inv
	}
	old := float64(s.OriginalMaxPositions)
	lowWave, highWave := old/s.LowFreqFactor, old/s.HighFreqFactor
	for i, f := range inv {
		wave := 2 * math.Pi / f
		switch {
		case wave < highWave:
		case wave > lowWave:
			inv[i] = f / s.Factor
		default:
			smooth := (old/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			inv[i] = (1-smooth)*f/s.Factor + smooth*f
		}
	}
	return inv
}

// InvFreq32 returns RoPE's inverse frequencies as transformers computes
// them: in float32, operation by operation as modeling_rope_utils does
// (torch's scalar / tensor is a float32 reciprocal times the scalar), so
// that a float32 forward pass matches transformers' to float32 rounding.
// Backends that follow transformers at fp32 use these; they differ from
// InvFreq64 by a few float32 ulps.
func (c *Config) InvFreq32() []float32 {
	d := c.HeadDim
	base := float64(float32(c.RopeTheta))
	inv := make([]float32, d/2)
	for i := range inv {
		e := float32(2*i) / float32(d)
		inv[i] = 1 / float32(math.Pow(base, float64(e)))
	}
	s := c.RopeScaling
	if s == nil {
		return inv
	}
	old := float64(s.OriginalMaxPositions)
	lowWave, highWave := float32(old/s.LowFreqFactor), float32(old/s.HighFreqFactor)
	factor, low := float32(s.Factor), float32(s.LowFreqFactor)
	span := float32(s.HighFreqFactor - s.LowFreqFactor)
	twoPi, old32 := float32(2*math.Pi), float32(old)
	for i, f := range inv {
		wave := (1 / f) * twoPi // 2π / inv_freq
		scaled := f
		if wave > lowWave {
			scaled = f / factor
		}
		if !(wave < highWave) && !(wave > lowWave) {
			smooth := ((1/wave)*old32 - low) / span // (old / wavelen − low) / (high − low)
			// Explicit conversions keep each product rounded, as torch's are
			// (Go may otherwise fuse a multiply-add on some architectures).
			scaled = float32((1-smooth)*scaled)/factor + float32(smooth*scaled)
		}
		inv[i] = scaled
	}
	return inv
}
