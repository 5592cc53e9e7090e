package gpumon

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Labels on every GPU metric.
var labels = []string{"gpu", "uuid", "name"}

// Collector is a prometheus.Collector that reads its devices at scrape
// time. A failed read sets gearbox_gpu_up to 0 and exports the values that
// were read; it never fails the scrape.
type Collector struct {
	devs []*Device

	up, memTotal, memUsed, util, memUtil, power, energy, temp, smClock *prometheus.Desc
}

// NewCollector returns a Collector for devs. It does not take ownership:
// close the devices after unregistering it.
func NewCollector(devs ...*Device) *Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("gearbox_gpu_"+name, help, labels, nil)
	}
	return &Collector{
		devs:     devs,
		up:       d("up", "1 if the GPU's telemetry was read in full at this scrape, else 0."),
		memTotal: d("memory_total_bytes", "GPU framebuffer memory."),
		memUsed:  d("memory_used_bytes", "GPU framebuffer memory in use, by all processes."),
		util:     d("utilization_ratio", "Fraction of the driver's last sample period in which a kernel ran on the GPU."),
		memUtil:  d("memory_utilization_ratio", "Fraction of the driver's last sample period in which GPU memory was read or written."),
		power:    d("power_watts", "GPU board power draw."),
		energy:   d("energy_joules_total", "GPU energy consumed since the driver was loaded."),
		temp:     d("temperature_celsius", "GPU die temperature."),
		smClock:  d("sm_clock_hertz", "Current GPU SM clock."),
	}
}

// Describe sends the descriptors of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.memTotal, c.memUsed, c.util, c.memUtil, c.power, c.energy, c.temp, c.smClock} {
		ch <- d
	}
}

// Collect reads every device and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, dev := range c.devs {
		lv := []string{strconv.Itoa(dev.index), dev.uuid, dev.name}
		send := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
			ch <- prometheus.MustNewConstMetric(d, t, v, lv...)
		}
		r, err := dev.Read()
		up := 1.0
		if err != nil {
			up = 0
		}
		send(c.up, prometheus.GaugeValue, up)
		if r.Valid.Has(FieldMemory) {
			send(c.memTotal, prometheus.GaugeValue, float64(r.MemoryTotalBytes))
			send(c.memUsed, prometheus.GaugeValue, float64(r.MemoryUsedBytes))
		}
		if r.Valid.Has(FieldUtilization) {
			send(c.util, prometheus.GaugeValue, r.GPUUtilization)
			send(c.memUtil, prometheus.GaugeValue, r.MemoryUtilization)
		}
		if r.Valid.Has(FieldPower) {
			send(c.power, prometheus.GaugeValue, r.PowerWatts)
		}
		if r.Valid.Has(FieldEnergy) {
			send(c.energy, prometheus.CounterValue, r.EnergyJoules)
		}
		if r.Valid.Has(FieldTemperature) {
			send(c.temp, prometheus.GaugeValue, r.TemperatureCelsius)
		}
		if r.Valid.Has(FieldSMClock) {
			send(c.smClock, prometheus.GaugeValue, r.SMClockHertz)
		}
	}
}
