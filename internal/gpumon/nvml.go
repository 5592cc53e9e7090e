//go:build cgo && linux

package gpumon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ebitengine/purego"
)

// libraryName is the NVML library Open loads (a test points it elsewhere).
var libraryName = "libnvidia-ml.so.1"

// NVML return codes and enums this package uses (nvml.h).
const (
	nvmlSuccess           = 0
	nvmlErrNotSupported   = 3
	nvmlErrDriverNotLoad  = 9
	nvmlTemperatureGPU    = 0  // NVML_TEMPERATURE_GPU
	nvmlClockSM           = 1  // NVML_CLOCK_SM
	nvmlDeviceStringBytes = 96 // NVML_DEVICE_UUID_V2_BUFFER_SIZE, NVML_DEVICE_NAME_V2_BUFFER_SIZE
)

// nvmlMemory is nvmlMemory_t; nvmlUtilization is nvmlUtilization_t.
type nvmlMemory struct{ total, free, used uint64 }
type nvmlUtilization struct{ gpu, memory uint32 }

// nvml is one load of the NVML library: the functions this package calls,
// resolved by name with purego (dlopen/dlsym, no C declarations compiled:
// NVML's header, with its deprecation attributes, is never included).
// Every function name below is in driver 580's libnvidia-ml.
type nvml struct {
	handle uintptr

	initV2        func() int32                                      // nvmlInit_v2
	shutdown      func() int32                                      // nvmlShutdown
	errorString   func(ret int32) string                            // nvmlErrorString
	deviceCount   func(n *uint32) int32                             // nvmlDeviceGetCount_v2
	handleByIndex func(i uint32, dev *uintptr) int32                // nvmlDeviceGetHandleByIndex_v2
	index         func(dev uintptr, i *uint32) int32                // nvmlDeviceGetIndex
	uuid          func(dev uintptr, b *byte, n uint32) int32        // nvmlDeviceGetUUID
	name          func(dev uintptr, b *byte, n uint32) int32        // nvmlDeviceGetName
	memoryInfo    func(dev uintptr, m *nvmlMemory) int32            // nvmlDeviceGetMemoryInfo
	utilization   func(dev uintptr, u *nvmlUtilization) int32       // nvmlDeviceGetUtilizationRates
	powerUsage    func(dev uintptr, mw *uint32) int32               // nvmlDeviceGetPowerUsage
	totalEnergy   func(dev uintptr, mj *uint64) int32               // nvmlDeviceGetTotalEnergyConsumption
	temperature   func(dev uintptr, sensor int32, c *uint32) int32  // nvmlDeviceGetTemperature
	clockInfo     func(dev uintptr, clock int32, mhz *uint32) int32 // nvmlDeviceGetClockInfo
}

// loadNVML opens the library and resolves its functions.
func loadNVML() (*nvml, error) {
	h, err := purego.Dlopen(libraryName, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s not found (no NVIDIA driver on this host): %v", ErrUnavailable, libraryName, err)
	}
	l := &nvml{handle: h}
	for _, f := range []struct {
		fn   any
		name string
	}{
		{&l.initV2, "nvmlInit_v2"},
		{&l.shutdown, "nvmlShutdown"},
		{&l.errorString, "nvmlErrorString"},
		{&l.deviceCount, "nvmlDeviceGetCount_v2"},
		{&l.handleByIndex, "nvmlDeviceGetHandleByIndex_v2"},
		{&l.index, "nvmlDeviceGetIndex"},
		{&l.uuid, "nvmlDeviceGetUUID"},
		{&l.name, "nvmlDeviceGetName"},
		{&l.memoryInfo, "nvmlDeviceGetMemoryInfo"},
		{&l.utilization, "nvmlDeviceGetUtilizationRates"},
		{&l.powerUsage, "nvmlDeviceGetPowerUsage"},
		{&l.totalEnergy, "nvmlDeviceGetTotalEnergyConsumption"},
		{&l.temperature, "nvmlDeviceGetTemperature"},
		{&l.clockInfo, "nvmlDeviceGetClockInfo"},
	} {
		sym, err := purego.Dlsym(h, f.name)
		if err != nil {
			_ = purego.Dlclose(h)
			return nil, fmt.Errorf("%w: %s has no %s (driver too old?): %v", ErrUnavailable, libraryName, f.name, err)
		}
		purego.RegisterFunc(f.fn, sym)
	}
	return l, nil
}

// err describes a failed NVML call.
func (l *nvml) err(what string, ret int32) error {
	return fmt.Errorf("%s: %s (NVML error %d)", what, l.errorString(ret), ret)
}

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

func open(t target) (*Device, error) {
	l, err := loadNVML()
	if err != nil {
		return nil, err
	}
	if ret := l.initV2(); ret != nvmlSuccess {
		err := l.unavailable(ret)
		_ = purego.Dlclose(l.handle)
		return nil, err
	}
	h, err := l.device(t)
	if err == nil {
		var d *Device
		if d, err = l.newDevice(h); err == nil {
			return d, nil
		}
	}
	l.shutdown()
	_ = purego.Dlclose(l.handle)
	return nil, err
}

// unavailable explains a failed nvmlInit.
func (l *nvml) unavailable(ret int32) error {
	why := l.errorString(ret)
	if ret == nvmlErrDriverNotLoad {
		why = "the NVIDIA kernel driver is not loaded"
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, why)
}

// device finds t's device handle.
func (l *nvml) device(t target) (uintptr, error) {
	var n uint32
	if ret := l.deviceCount(&n); ret != nvmlSuccess {
		return 0, fmt.Errorf("%w: %v", ErrNoDevice, l.err("count devices", ret))
	}
	if t.uuid == "" {
		var h uintptr
		if t.index < 0 || uint32(t.index) >= n {
			return 0, fmt.Errorf("%w: NVML index %d (%d device(s))", ErrNoDevice, t.index, n)
		}
		if ret := l.handleByIndex(uint32(t.index), &h); ret != nvmlSuccess {
			return 0, fmt.Errorf("%w: NVML index %d (%d device(s)): %s", ErrNoDevice, t.index, n, l.errorString(ret))
		}
		return h, nil
	}
	// CUDA_VISIBLE_DEVICES accepts UUID prefixes; NVML wants the whole UUID.
	for i := range n {
		var h uintptr
		if l.handleByIndex(i, &h) != nvmlSuccess {
			continue
		}
		if u, err := l.str(h, l.uuid); err == nil && strings.HasPrefix(u, t.uuid) {
			return h, nil
		}
	}
	return 0, fmt.Errorf("%w: no device's UUID starts with %q", ErrNoDevice, t.uuid)
}

// str reads one of the device's strings (UUID, name).
func (l *nvml) str(h uintptr, get func(uintptr, *byte, uint32) int32) (string, error) {
	var buf [nvmlDeviceStringBytes]byte
	if ret := get(h, &buf[0], uint32(len(buf))); ret != nvmlSuccess {
		return "", errors.New(l.errorString(ret))
	}
	s, _, _ := bytes.Cut(buf[:], []byte{0})
	return string(s), nil
}

func (l *nvml) newDevice(h uintptr) (*Device, error) {
	var idx uint32
	if ret := l.index(h, &idx); ret != nvmlSuccess {
		return nil, fmt.Errorf("gpumon: %w", l.err("device index", ret))
	}
	uuid, err := l.str(h, l.uuid)
	if err != nil {
		return nil, fmt.Errorf("gpumon: device %d UUID: %w", idx, err)
	}
	name, err := l.str(h, l.name)
	if err != nil {
		return nil, fmt.Errorf("gpumon: device %d name: %w", idx, err)
	}
	return &Device{
		index:      int(idx),
		uuid:       uuid,
		name:       name,
		readFunc:   func() (Reading, error) { return l.read(int(idx), h) },
		energyFunc: func() (float64, error) { return l.energy(h) },
		closeFunc: func() error {
			ret := l.shutdown()
			_ = purego.Dlclose(l.handle)
			if ret != nvmlSuccess {
				return fmt.Errorf("gpumon: %w", l.err("nvmlShutdown", ret))
			}
			return nil
		},
	}, nil
}

func (l *nvml) energy(h uintptr) (float64, error) {
	var mj uint64
	if ret := l.totalEnergy(h, &mj); ret != nvmlSuccess {
		return 0, fmt.Errorf("gpumon: %w", l.err("total energy", ret))
	}
	return float64(mj) / 1e3, nil
}

// read takes one snapshot; values the device does not support are left
// out without an error.
func (l *nvml) read(idx int, h uintptr) (Reading, error) {
	var r Reading
	var errs []error
	note := func(what string, ret int32, f Fields) bool {
		switch ret {
		case nvmlSuccess:
			r.Valid |= f
			return true
		case nvmlErrNotSupported:
		default:
			errs = append(errs, l.err(what, ret))
		}
		return false
	}
	var m nvmlMemory
	if note("memory", l.memoryInfo(h, &m), FieldMemory) {
		r.MemoryTotalBytes, r.MemoryUsedBytes = m.total, m.used
	}
	var u nvmlUtilization
	if note("utilization", l.utilization(h, &u), FieldUtilization) {
		r.GPUUtilization, r.MemoryUtilization = float64(u.gpu)/100, float64(u.memory)/100
	}
	var mw uint32
	if note("power", l.powerUsage(h, &mw), FieldPower) {
		r.PowerWatts = float64(mw) / 1e3
	}
	var mj uint64
	if note("energy", l.totalEnergy(h, &mj), FieldEnergy) {
		r.EnergyJoules = float64(mj) / 1e3
	}
	// nvmlDeviceGetTemperature is marked deprecated in NVML 13 but is
	// present in driver 580, which is what the fleet runs.
	var c uint32
	if note("temperature", l.temperature(h, nvmlTemperatureGPU, &c), FieldTemperature) {
		r.TemperatureCelsius = float64(c)
	}
	var mhz uint32
	if note("sm clock", l.clockInfo(h, nvmlClockSM, &mhz), FieldSMClock) {
		r.SMClockHertz = float64(mhz) * 1e6
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("gpumon: GPU %d: %w", idx, errors.Join(errs...))
	}
	return r, nil
}
