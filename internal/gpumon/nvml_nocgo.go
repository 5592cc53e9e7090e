//go:build !cgo || !linux

package gpumon

import "fmt"

// Open would open the GPU with NVML index index; NVML is loaded only by
// Linux binaries built with cgo, so in this build it returns an error
// wrapping ErrUnavailable.
func Open(index int) (*Device, error) {
	return nil, fmt.Errorf("%w: binary built without cgo, or not for Linux", ErrUnavailable)
}

// OpenCUDA would open CUDA device ordinal; in this build it returns an
// error wrapping ErrUnavailable.
func OpenCUDA(ordinal int) (*Device, error) { return Open(ordinal) }
