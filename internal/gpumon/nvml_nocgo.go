//go:build !cgo || !nvml

package gpumon

import "fmt"

// Open would open the GPU with NVML index index. NVML telemetry is built
// in with the build tag nvml (go-nvml's cgo wrappers, whose compile prints
// about 200 lines of deprecation warnings unless CGO_CFLAGS silences them:
// the Dockerfile and `task build` set both); in this build it returns an
// error wrapping ErrUnavailable.
func Open(index int) (*Device, error) {
	return nil, fmt.Errorf("%w: binary built without NVML telemetry (build with cgo and -tags nvml)", ErrUnavailable)
}

// OpenCUDA would open CUDA device ordinal; in this build it returns an
// error wrapping ErrUnavailable.
func OpenCUDA(ordinal int) (*Device, error) { return Open(ordinal) }

// OpenUUID would open the GPU with UUID uuid; in this build it returns an
// error wrapping ErrUnavailable.
func OpenUUID(uuid string) (*Device, error) { return Open(0) }
