//go:build cgo && nvml

package gpumon

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Open opens the GPU with NVML index index. It returns an error wrapping
// ErrUnavailable when NVML cannot be initialised, or ErrNoDevice when there
// is no such device.
func Open(index int) (*Device, error) {
	return open(target{index: index})
}

// OpenCUDA opens the GPU that CUDA calls device ordinal (as in "cuda:N"),
// reading CUDA_VISIBLE_DEVICES to map it to NVML's numbering. Errors are
// those of Open.
func OpenCUDA(ordinal int) (*Device, error) {
	visible, set := os.LookupEnv("CUDA_VISIBLE_DEVICES")
	t, err := cudaTarget(ordinal, visible, set)
	if err != nil {
		return nil, err
	}
	return open(t)
}

// OpenUUID opens the GPU whose UUID is uuid ("GPU-…", as nvidia-smi and
// a CUDA backend's DeviceInfo give it): the CUDA device it denotes,
// whatever CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER did to its ordinal.
// Errors are those of Open; a MIG instance's UUID is ErrNoDevice.
func OpenUUID(uuid string) (*Device, error) {
	t, err := uuidTarget(uuid)
	if err != nil {
		return nil, err
	}
	return open(t)
}

func open(t target) (*Device, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return nil, unavailable(ret)
	}
	h, err := handle(t)
	if err == nil {
		var d *Device
		if d, err = newDevice(h); err == nil {
			return d, nil
		}
	}
	_ = nvml.Shutdown()
	return nil, err
}

// unavailable explains a failed nvmlInit.
func unavailable(ret nvml.Return) error {
	why := ret.Error()
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		why = "libnvidia-ml.so.1 not found (no NVIDIA driver on this host)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		why = "the NVIDIA kernel driver is not loaded"
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, why)
}

// handle finds t's device handle.
func handle(t target) (nvml.Device, error) {
	if t.uuid == "" {
		h, ret := nvml.DeviceGetHandleByIndex(t.index)
		if ret != nvml.SUCCESS {
			n, _ := nvml.DeviceGetCount()
			return nil, fmt.Errorf("%w: NVML index %d (%d device(s)): %v", ErrNoDevice, t.index, n, ret)
		}
		return h, nil
	}
	if h, ret := nvml.DeviceGetHandleByUUID(t.uuid); ret == nvml.SUCCESS {
		return h, nil
	}
	// CUDA_VISIBLE_DEVICES accepts UUID prefixes; NVML wants the whole UUID.
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: count devices: %v", ErrNoDevice, ret)
	}
	for i := range n {
		h, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		if u, ret := h.GetUUID(); ret == nvml.SUCCESS && strings.HasPrefix(u, t.uuid) {
			return h, nil
		}
	}
	return nil, fmt.Errorf("%w: no device's UUID starts with %q", ErrNoDevice, t.uuid)
}

func newDevice(h nvml.Device) (*Device, error) {
	idx, ret := h.GetIndex()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpumon: device index: %v", ret)
	}
	uuid, ret := h.GetUUID()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpumon: device %d UUID: %v", idx, ret)
	}
	name, ret := h.GetName()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpumon: device %d name: %v", idx, ret)
	}
	return &Device{
		index:      idx,
		uuid:       uuid,
		name:       name,
		readFunc:   func() (Reading, error) { return read(idx, h) },
		energyFunc: func() (float64, error) { return energy(h) },
		closeFunc: func() error {
			if ret := nvml.Shutdown(); ret != nvml.SUCCESS {
				return fmt.Errorf("gpumon: nvmlShutdown: %v", ret)
			}
			return nil
		},
	}, nil
}

func energy(h nvml.Device) (float64, error) {
	mj, ret := h.GetTotalEnergyConsumption()
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("gpumon: total energy: %v", ret)
	}
	return float64(mj) / 1e3, nil
}

// read takes one snapshot; values the device does not support are left
// out without an error.
func read(idx int, h nvml.Device) (Reading, error) {
	var r Reading
	var errs []error
	note := func(what string, ret nvml.Return, f Fields) bool {
		switch ret {
		case nvml.SUCCESS:
			r.Valid |= f
			return true
		case nvml.ERROR_NOT_SUPPORTED:
		default:
			errs = append(errs, fmt.Errorf("%s: %v", what, ret))
		}
		return false
	}
	if m, ret := h.GetMemoryInfo(); note("memory", ret, FieldMemory) {
		r.MemoryTotalBytes, r.MemoryUsedBytes = m.Total, m.Used
	}
	if u, ret := h.GetUtilizationRates(); note("utilization", ret, FieldUtilization) {
		r.GPUUtilization, r.MemoryUtilization = float64(u.Gpu)/100, float64(u.Memory)/100
	}
	if mw, ret := h.GetPowerUsage(); note("power", ret, FieldPower) {
		r.PowerWatts = float64(mw) / 1e3
	}
	if mj, ret := h.GetTotalEnergyConsumption(); note("energy", ret, FieldEnergy) {
		r.EnergyJoules = float64(mj) / 1e3
	}
	// nvmlDeviceGetTemperature is marked deprecated in NVML 13 but is
	// present in driver 580, which is what the fleet runs.
	if c, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); note("temperature", ret, FieldTemperature) {
		r.TemperatureCelsius = float64(c)
	}
	if mhz, ret := h.GetClockInfo(nvml.CLOCK_SM); note("sm clock", ret, FieldSMClock) {
		r.SMClockHertz = float64(mhz) * 1e6
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("gpumon: GPU %d: %w", idx, errors.Join(errs...))
	}
	return r, nil
}
