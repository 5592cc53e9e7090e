package gpumon

import "errors"

var (
	// ErrUnavailable is wrapped by Open and OpenCUDA when NVML cannot be
	// used at all: no libnvidia-ml.so.1, no driver loaded, or a binary
	// built without cgo. The message starts "NVML unavailable: ".
	ErrUnavailable = errors.New("NVML unavailable")
	// ErrNoDevice is wrapped by Open and OpenCUDA when NVML works but has
	// no device by that index or UUID.
	ErrNoDevice = errors.New("no such GPU")
)
