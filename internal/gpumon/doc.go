// Package gpumon reads an NVIDIA GPU's telemetry through NVML (the
// driver's libnvidia-ml.so.1, loaded at run time by github.com/NVIDIA/go-nvml)
// and exports it as Prometheus metrics.
//
// The NVML binding is built in with the build tag nvml (and cgo): go-nvml
// compiles NVML's header, and its deprecated NVML 13 functions make gcc
// print about 200 lines of warnings unless CGO_CFLAGS carries
// -Wno-deprecated-declarations. So the quick start (go run, go test) builds
// without it and prints nothing, and the builds that run on GPU hosts (the
// Dockerfile, `task build`) set the tag and the flag.
//
// Open finds a device by its NVML index; OpenUUID by its UUID, which a
// CUDA backend reports (cuda.DeviceInfo.UUID) and which names one physical
// GPU whatever CUDA's numbering; OpenCUDA by the CUDA ordinal a backend
// uses ("cuda:N"), honouring CUDA_VISIBLE_DEVICES, for a backend that gives
// no UUID: with the variable unset it takes the ordinal for the NVML index,
// which CUDA's default FASTEST_FIRST order breaks on a host of mixed GPUs.
// Without a driver, or in a binary built without cgo or the tag, all three
// return an error wrapping ErrUnavailable ("NVML unavailable: ..."): the
// caller logs it and goes on without GPU metrics.
//
// A Device's Read takes one snapshot: name and UUID (read once, at Open),
// memory total and used, GPU and memory-controller utilisation, power,
// the total energy counter, temperature and SM clock. Energy reads only the
// energy counter, for benchmarks that report joules per unit of work: take
// it before and after, and subtract. The driver refreshes the counter every
// few tens of milliseconds, so measure over seconds, not milliseconds.
//
// NewCollector makes a prometheus.Collector that reads its devices at scrape
// time, labelled by NVML index, UUID and name (one Collector for all of a
// process's GPUs: a second Collector of the same metrics would be a
// duplicate registration):
//
//	gearbox_gpu_up                          1 if the last read succeeded
//	gearbox_gpu_memory_total_bytes          framebuffer memory
//	gearbox_gpu_memory_used_bytes           framebuffer memory in use (all processes)
//	gearbox_gpu_utilization_ratio           fraction of the last sample period a kernel ran
//	gearbox_gpu_memory_utilization_ratio    fraction of it device memory was read or written
//	gearbox_gpu_power_watts                 board power draw
//	gearbox_gpu_energy_joules_total         energy since the driver loaded (counter)
//	gearbox_gpu_temperature_celsius         GPU die temperature
//	gearbox_gpu_sm_clock_hertz              current SM clock
//
// A value the device does not report (NVML_ERROR_NOT_SUPPORTED) is left
// out of the scrape rather than exported as zero.
//
// Only NVML functions present in driver 580 are called: nvmlInit_v2,
// nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetHandleByUUID, nvmlDeviceGetName,
// nvmlDeviceGetUUID, nvmlDeviceGetMemoryInfo, nvmlDeviceGetUtilizationRates,
// nvmlDeviceGetPowerUsage, nvmlDeviceGetTotalEnergyConsumption,
// nvmlDeviceGetTemperature, nvmlDeviceGetClockInfo and nvmlShutdown.
package gpumon
