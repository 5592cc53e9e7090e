package gpumon

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixedDevice is a Device whose reads return r and err, standing in for the
// NVML library that these tests do not have; the collector is the real one.
func fixedDevice(index int, uuid, name string, r Reading, err error) *Device {
	return &Device{
		index: index, uuid: uuid, name: name,
		readFunc:   func() (Reading, error) { return r, err },
		energyFunc: func() (float64, error) { return r.EnergyJoules, err },
	}
}

func TestCollectorDescribe(t *testing.T) {
	ch := make(chan *prometheus.Desc, 32)
	NewCollector().Describe(ch)
	close(ch)
	var got []string
	for d := range ch {
		s := d.String()
		if !strings.Contains(s, `variableLabels: {gpu,uuid,name}`) {
			t.Errorf("%s: want variable labels gpu, uuid, name", s)
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(s, `Desc{fqName: "`), `"`)
		got = append(got, name)
	}
	want := []string{
		"gearbox_gpu_up", "gearbox_gpu_memory_total_bytes", "gearbox_gpu_memory_used_bytes",
		"gearbox_gpu_utilization_ratio", "gearbox_gpu_memory_utilization_ratio", "gearbox_gpu_power_watts",
		"gearbox_gpu_energy_joules_total", "gearbox_gpu_temperature_celsius", "gearbox_gpu_sm_clock_hertz",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("described %v; want %v", got, want)
	}
}

func TestCollectorFullReading(t *testing.T) {
	dev := fixedDevice(3, "GPU-5d3c0000-1111", `NVIDIA H100 80GB "HBM3"`, Reading{
		Valid:            FieldMemory | FieldUtilization | FieldPower | FieldEnergy | FieldTemperature | FieldSMClock,
		MemoryTotalBytes: 85520809984, MemoryUsedBytes: 1 << 30,
		GPUUtilization: 0.97, MemoryUtilization: 0.41,
		PowerWatts: 612.5, EnergyJoules: 123456.789, TemperatureCelsius: 61, SMClockHertz: 1980e6,
	}, nil)
	reg := prometheus.NewPedanticRegistry() // checks Collect against Describe
	reg.MustRegister(NewCollector(dev))
	lbl := `{gpu="3",name="NVIDIA H100 80GB \"HBM3\"",uuid="GPU-5d3c0000-1111"}`
	want := strings.NewReplacer("@L", lbl).Replace(`
# HELP gearbox_gpu_energy_joules_total GPU energy consumed since the driver was loaded.
# TYPE gearbox_gpu_energy_joules_total counter
gearbox_gpu_energy_joules_total@L 123456.789
# HELP gearbox_gpu_memory_total_bytes GPU framebuffer memory.
# TYPE gearbox_gpu_memory_total_bytes gauge
gearbox_gpu_memory_total_bytes@L 8.5520809984e+10
# HELP gearbox_gpu_memory_used_bytes GPU framebuffer memory in use, by all processes.
# TYPE gearbox_gpu_memory_used_bytes gauge
gearbox_gpu_memory_used_bytes@L 1.073741824e+09
# HELP gearbox_gpu_memory_utilization_ratio Fraction of the driver's last sample period in which GPU memory was read or written.
# TYPE gearbox_gpu_memory_utilization_ratio gauge
gearbox_gpu_memory_utilization_ratio@L 0.41
# HELP gearbox_gpu_power_watts GPU board power draw.
# TYPE gearbox_gpu_power_watts gauge
gearbox_gpu_power_watts@L 612.5
# HELP gearbox_gpu_sm_clock_hertz Current GPU SM clock.
# TYPE gearbox_gpu_sm_clock_hertz gauge
gearbox_gpu_sm_clock_hertz@L 1.98e+09
# HELP gearbox_gpu_temperature_celsius GPU die temperature.
# TYPE gearbox_gpu_temperature_celsius gauge
gearbox_gpu_temperature_celsius@L 61
# HELP gearbox_gpu_up 1 if the GPU's telemetry was read in full at this scrape, else 0.
# TYPE gearbox_gpu_up gauge
gearbox_gpu_up@L 1
# HELP gearbox_gpu_utilization_ratio Fraction of the driver's last sample period in which a kernel ran on the GPU.
# TYPE gearbox_gpu_utilization_ratio gauge
gearbox_gpu_utilization_ratio@L 0.97
`)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Errorf("lint: %v %v", probs, err)
	}
}

// A partial reading exports what was read, leaves out what was not, and
// says the read failed; two devices are told apart by their labels.
func TestCollectorPartialReadings(t *testing.T) {
	a := fixedDevice(0, "GPU-a", "A", Reading{Valid: FieldMemory, MemoryTotalBytes: 100, MemoryUsedBytes: 40}, errors.New("power: ERROR_GPU_IS_LOST"))
	b := fixedDevice(1, "GPU-b", "B", Reading{Valid: FieldPower, PowerWatts: 70}, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(a, b))
	want := `
# HELP gearbox_gpu_memory_used_bytes GPU framebuffer memory in use, by all processes.
# TYPE gearbox_gpu_memory_used_bytes gauge
gearbox_gpu_memory_used_bytes{gpu="0",name="A",uuid="GPU-a"} 40
# HELP gearbox_gpu_power_watts GPU board power draw.
# TYPE gearbox_gpu_power_watts gauge
gearbox_gpu_power_watts{gpu="1",name="B",uuid="GPU-b"} 70
# HELP gearbox_gpu_up 1 if the GPU's telemetry was read in full at this scrape, else 0.
# TYPE gearbox_gpu_up gauge
gearbox_gpu_up{gpu="0",name="A",uuid="GPU-a"} 0
gearbox_gpu_up{gpu="1",name="B",uuid="GPU-b"} 1
`
	names := []string{"gearbox_gpu_up", "gearbox_gpu_memory_used_bytes", "gearbox_gpu_power_watts"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	for name, n := range map[string]int{
		"gearbox_gpu_memory_total_bytes":  1,
		"gearbox_gpu_energy_joules_total": 0,
		"gearbox_gpu_utilization_ratio":   0,
		"gearbox_gpu_temperature_celsius": 0,
	} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != n {
			t.Errorf("%s: %d series (%v); want %d", name, got, err, n)
		}
	}
}
