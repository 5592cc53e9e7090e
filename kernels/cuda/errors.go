package cuda

import (
	"errors"
	"fmt"
)

// ErrUnavailable is returned (wrapped) by Open and New when CUDA cannot be
// used at all: the binary was built without cgo, the driver or a CUDA
// library is missing, or the driver has no device.
var ErrUnavailable = errors.New("cuda unavailable")

// ErrNoDevice is returned (wrapped) by Open for a device index the driver
// does not have.
var ErrNoDevice = errors.New("no such cuda device")

// ErrOutOfMemory matches (with errors.Is) an Error whose code is
// CUDA_ERROR_OUT_OF_MEMORY.
var ErrOutOfMemory = errors.New("cuda: out of memory")

// ErrCompile matches (with errors.Is) a CompileError.
var ErrCompile = errors.New("cuda: kernel compilation failed")

// ErrClosed is returned by Forward after Close.
var ErrClosed = errors.New("cuda: backend closed")

// The codes Error and BlasError recognise: GBX_CUDA_ERROR_OUT_OF_MEMORY
// and GBX_CUBLAS_STATUS_ALLOC_FAILED of src/abi.h, copied because this file
// builds without cgo too (cgo.go checks at compile time that they agree).
const (
	cudaErrorOutOfMemory    = 2
	cublasStatusAllocFailed = 3
)

// Error is a failed CUDA driver call.
type Error struct {
	Op   string // the driver function, e.g. "cuMemAlloc"
	Code int    // the CUresult
	Name string // e.g. "CUDA_ERROR_OUT_OF_MEMORY"
	Msg  string // the driver's description
}

func (e *Error) Error() string {
	return fmt.Sprintf("cuda: %s: %s (%d): %s", e.Op, e.Name, e.Code, e.Msg)
}

// Is makes errors.Is(err, ErrOutOfMemory) true for out-of-memory errors.
func (e *Error) Is(target error) bool {
	return target == ErrOutOfMemory && e.Code == cudaErrorOutOfMemory
}

// CompileError is a failed NVRTC compilation; Log is NVRTC's log.
type CompileError struct {
	Source string // the program: a module's name, e.g. "ops"
	Status string // NVRTC's status string
	Log    string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("cuda: nvrtc: compiling %s: %s\n%s", e.Source, e.Status, e.Log)
}

// Is makes errors.Is(err, ErrCompile) true.
func (e *CompileError) Is(target error) bool { return target == ErrCompile }

// BlasError is a failed cuBLASLt call; Status is the cublasStatus_t.
type BlasError struct {
	Op     string
	Status int
}

func (e *BlasError) Error() string {
	return fmt.Sprintf("cuda: %s: cublas status %d", e.Op, e.Status)
}

// Is makes errors.Is(err, ErrOutOfMemory) true for CUBLAS_STATUS_ALLOC_FAILED.
func (e *BlasError) Is(target error) bool {
	return target == ErrOutOfMemory && e.Status == cublasStatusAllocFailed
}
