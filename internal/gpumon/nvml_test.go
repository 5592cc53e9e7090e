//go:build cgo && nvml

package gpumon

import (
	"errors"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// TestOpenLibraryMissing points go-nvml at a library that does not exist,
// so the error path runs on GPU hosts too.
func TestOpenLibraryMissing(t *testing.T) {
	if err := nvml.SetLibraryOptions(nvml.WithLibraryPath("/nonexistent/libnvidia-ml.so.1")); err != nil {
		t.Skipf("NVML is held open elsewhere: %v", err)
	}
	t.Cleanup(func() { _ = nvml.SetLibraryOptions(nvml.WithLibraryPath("libnvidia-ml.so.1")) })
	byUUID := func(int) (*Device, error) { return OpenUUID("GPU-5d3c0000-1111-2222-3333-444455556666") }
	for _, open := range []func(int) (*Device, error){Open, OpenCUDA, byUUID} {
		d, err := open(0)
		if err == nil {
			d.Close()
			t.Fatal("open succeeded without the library")
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("error %v; want ErrUnavailable", err)
		}
		if want := "NVML unavailable: libnvidia-ml.so.1 not found"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q; want it to start %q", err, want)
		}
	}
}
