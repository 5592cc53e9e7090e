package gpumon

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Device is one GPU opened through NVML. Its methods are safe for
// concurrent use; Close it when done.
type Device struct {
	index int
	uuid  string
	name  string

	// readFunc and energyFunc read the device; Open sets them to the NVML
	// calls, tests to their own sources.
	readFunc   func() (Reading, error)
	energyFunc func() (float64, error)
	closeFunc  func() error
	closeOnce  sync.Once
	closeErr   error
}

// Index is the device's NVML index (PCI bus order), which can differ from
// its CUDA ordinal.
func (d *Device) Index() int { return d.index }

// UUID is the device's UUID, e.g. "GPU-5d3c…".
func (d *Device) UUID() string { return d.uuid }

// Name is the device's product name, e.g. "NVIDIA H100 80GB HBM3".
func (d *Device) Name() string { return d.name }

// Read takes one snapshot of the device's telemetry. Values the device
// does not support are absent from the Reading's Valid set and are not an
// error; the error reports any other failed read (the Reading still holds
// the values that were read).
func (d *Device) Read() (Reading, error) { return d.readFunc() }

// Energy reads the device's total energy counter: joules consumed since the
// driver was loaded, with millijoule resolution. Subtract two readings to
// measure the energy of the work between them.
func (d *Device) Energy() (float64, error) { return d.energyFunc() }

// Close releases the device's hold on NVML. It is safe to call twice.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		if d.closeFunc != nil {
			d.closeErr = d.closeFunc()
		}
	})
	return d.closeErr
}

// Fields is a set of the telemetry values a Reading holds.
type Fields uint8

// The values a Reading can hold.
const (
	FieldMemory      Fields = 1 << iota // MemoryTotalBytes, MemoryUsedBytes
	FieldUtilization                    // GPUUtilization, MemoryUtilization
	FieldPower                          // PowerWatts
	FieldEnergy                         // EnergyJoules
	FieldTemperature                    // TemperatureCelsius
	FieldSMClock                        // SMClockHertz
)

// Has reports whether every field in f is in s.
func (s Fields) Has(f Fields) bool { return s&f == f }

// Reading is one snapshot of a device's telemetry, in base units.
type Reading struct {
	// Valid says which of the values below were read.
	Valid Fields

	MemoryTotalBytes uint64
	MemoryUsedBytes  uint64
	// GPUUtilization is the fraction (0–1) of the driver's last sample
	// period in which a kernel was running; MemoryUtilization the fraction
	// in which device memory was being read or written.
	GPUUtilization    float64
	MemoryUtilization float64
	PowerWatts        float64
	// EnergyJoules is the energy consumed since the driver was loaded.
	EnergyJoules       float64
	TemperatureCelsius float64
	SMClockHertz       float64
}

// CUDAOrdinal parses a backend name or device spec of the form "cuda:N"
// and returns N; ok is false for anything else ("cpu", "auto").
func CUDAOrdinal(name string) (n int, ok bool) {
	rest, found := strings.CutPrefix(strings.ToLower(strings.TrimSpace(name)), "cuda:")
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// target is the NVML device a CUDA ordinal denotes: an NVML index, or a
// UUID (or UUID prefix) when CUDA_VISIBLE_DEVICES names devices that way.
type target struct {
	index int
	uuid  string
}

// uuidTarget is the NVML device with UUID uuid, as a CUDA backend reports
// it ("GPU-…"). A MIG instance's UUID ("MIG-…") is refused: the metrics
// cover whole GPUs.
func uuidTarget(uuid string) (target, error) {
	switch {
	case strings.HasPrefix(uuid, "GPU-") && len(uuid) > len("GPU-"):
		return target{uuid: uuid}, nil
	case strings.HasPrefix(uuid, "MIG-"):
		return target{}, fmt.Errorf("%w: %s is a MIG instance; GPU metrics cover whole GPUs only", ErrNoDevice, uuid)
	}
	return target{}, fmt.Errorf("%w: %q is not a GPU UUID (GPU-…)", ErrNoDevice, uuid)
}

// cudaTarget maps CUDA ordinal n to an NVML device under the
// CUDA_VISIBLE_DEVICES value visible (set reports whether the variable is
// set at all). CUDA numbers the devices the variable lists, in its order,
// and ignores everything from the first entry it cannot parse; unset, the
// ordinal is taken as the NVML index, which holds when CUDA_DEVICE_ORDER is
// PCI_BUS_ID or the GPUs are all of one model.
func cudaTarget(n int, visible string, set bool) (target, error) {
	if !set {
		return target{index: n}, nil
	}
	var list []target
	for e := range strings.SplitSeq(visible, ",") {
		e = strings.TrimSpace(e)
		if i, err := strconv.Atoi(e); err == nil && i >= 0 {
			list = append(list, target{index: i})
			continue
		}
		if strings.HasPrefix(e, "GPU-") && len(e) > len("GPU-") {
			list = append(list, target{uuid: e})
			continue
		}
		if strings.HasPrefix(e, "MIG-") {
			return target{}, fmt.Errorf("%w: CUDA_VISIBLE_DEVICES entry %q is a MIG instance; GPU metrics cover whole GPUs only", ErrNoDevice, e)
		}
		break // CUDA stops at the first entry it cannot parse
	}
	if n >= len(list) {
		return target{}, fmt.Errorf("%w: cuda:%d is not among the %d device(s) CUDA_VISIBLE_DEVICES=%q makes visible", ErrNoDevice, n, len(list), visible)
	}
	return list[n], nil
}

// TotalEnergy is the sum of devs' energy counters (Energy), in joules: the
// energy of work spread over several GPUs, read before and after it.
func TotalEnergy(devs ...*Device) (float64, error) {
	total := 0.0
	for _, d := range devs {
		e, err := d.Energy()
		if err != nil {
			return 0, fmt.Errorf("gpumon: GPU %d (%s): %w", d.index, d.uuid, err)
		}
		total += e
	}
	return total, nil
}
