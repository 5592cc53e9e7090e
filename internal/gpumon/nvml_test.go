//go:build cgo && linux

package gpumon

import (
	"errors"
	"strings"
	"testing"
)

// TestOpenLibraryMissing points the loader at a library that does not
// exist, so the error path runs on GPU hosts too.
func TestOpenLibraryMissing(t *testing.T) {
	old := libraryName
	libraryName = "/nonexistent/libnvidia-ml.so.1"
	t.Cleanup(func() { libraryName = old })
	for _, open := range []func(int) (*Device, error){Open, OpenCUDA} {
		d, err := open(0)
		if err == nil {
			d.Close()
			t.Fatal("open succeeded without the library")
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("error %v; want ErrUnavailable", err)
		}
		if want := "NVML unavailable: /nonexistent/libnvidia-ml.so.1 not found"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q; want it to start %q", err, want)
		}
	}
}

// TestLoadOtherLibrary: a library that is not NVML is refused by name of
// the first function it lacks (libc is in every process).
func TestLoadOtherLibrary(t *testing.T) {
	old := libraryName
	libraryName = "libc.so.6"
	t.Cleanup(func() { libraryName = old })
	_, err := Open(0)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "libc.so.6 has no nvmlInit_v2") {
		t.Errorf("Open with libc as NVML: %v; want ErrUnavailable naming nvmlInit_v2", err)
	}
}
