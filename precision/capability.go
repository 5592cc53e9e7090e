package precision

import (
	"fmt"
	"strings"
)

// Support says how a device runs a format.
type Support int

// The levels of support, weakest first.
const (
	// Unavailable: the device cannot run the format.
	Unavailable Support = iota
	// Emulated: the device runs the format's numerics without hardware for
	// them: on the CPU every format but fp32; on CUDA before 10.0, fp4 as
	// 4-bit weights dequantized in the kernel feeding bf16 math.
	Emulated
	// Native: the device has tensor-core (or fp32) hardware for the format.
	Native
)

func (s Support) String() string {
	switch s {
	case Unavailable:
		return "unavailable"
	case Emulated:
		return "emulated"
	case Native:
		return "native"
	}
	return fmt.Sprintf("Support(%d)", int(s))
}

// Capabilities says which formats a device can run, and how. The zero value
// is a device that runs nothing. Capabilities are values: compare them with
// ==, copy them freely.
type Capabilities struct {
	// Device names the device for messages: "cpu", "cuda 8.9".
	Device  string
	support [len(allFormats)]Support
}

// allFormats is All as an array, for sizing.
var allFormats = [...]Format{FP32, TF32, FP16, BF16, FP8, FP4}

// CPUCapabilities returns what the CPU backend runs: fp32 natively and every
// other format emulated (operands rounded or quantized exactly as the GPU
// would, accumulation in float32).
func CPUCapabilities() Capabilities {
	c := Capabilities{Device: "cpu"}
	for _, f := range allFormats {
		c.support[f.index()] = Emulated
	}
	c.support[FP32.index()] = Native
	return c
}

// CUDACapabilities returns what a CUDA device of compute capability
// major.minor runs:
//
//	fp32        native everywhere
//	fp16        native from 7.0
//	tf32, bf16  native from 8.0
//	fp8         native from 8.9 (Ada, Hopper)
//	fp4         emulated (weight-only: 4-bit weights dequantized in the
//	            kernel, bf16 math) on 8.0 to 9.x, native from 10.0
//
// Below 7.0 only fp32 runs. Formats not listed for a capability are
// Unavailable.
func CUDACapabilities(major, minor int) Capabilities {
	c := Capabilities{Device: fmt.Sprintf("cuda %d.%d", major, minor)}
	cc := major*10 + min(max(minor, 0), 9)
	set := func(f Format, s Support) { c.support[f.index()] = s }
	set(FP32, Native)
	if cc >= 70 {
		set(FP16, Native)
	}
	if cc >= 80 {
		set(TF32, Native)
		set(BF16, Native)
		set(FP4, Emulated)
	}
	if cc >= 89 {
		set(FP8, Native)
	}
	if cc >= 100 {
		set(FP4, Native)
	}
	return c
}

// Support returns how the device runs f; Unavailable for a value that is
// not a concrete format (Auto included).
func (c Capabilities) Support(f Format) Support {
	i := f.index()
	if i < 0 {
		return Unavailable
	}
	return c.support[i]
}

// With returns a copy of c that runs f with support s: for a backend that
// lacks a kernel its device could run. It returns c unchanged when f is not
// a concrete format.
func (c Capabilities) With(f Format, s Support) Capabilities {
	if i := f.index(); i >= 0 {
		c.support[i] = s
	}
	return c
}

// Supported returns the formats the device runs, natively or emulated, in
// the order of All.
func (c Capabilities) Supported() []Format {
	var fs []Format
	for i, f := range allFormats {
		if c.support[i] != Unavailable {
			fs = append(fs, f)
		}
	}
	return fs
}

// String describes c, e.g. "cuda 8.0: fp32 native, tf32 native, fp16
// native, bf16 native, fp8 unavailable, fp4 emulated".
func (c Capabilities) String() string {
	parts := make([]string, len(allFormats))
	for i, f := range allFormats {
		parts[i] = string(f) + " " + c.support[i].String()
	}
	return c.Device + ": " + strings.Join(parts, ", ")
}
