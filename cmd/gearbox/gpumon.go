package main

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/gpumon"
	"github.com/gearbox-inference/gearbox/kernels"
)

// deviceUUID is the UUID of b's device when b reports one (the CUDA
// backend: "GPU-…"), else "".
func deviceUUID(b kernels.Backend) string {
	if u, ok := b.(interface{ UUID() string }); ok {
		return u.UUID()
	}
	return ""
}

// openGPUMon opens NVML telemetry for the GPU behind a backend named
// "cuda:N": by uuid, the UUID the backend reports, or, when it gives none,
// by its ordinal through CUDA_VISIBLE_DEVICES. It returns nil for other
// backends, and when NVML cannot be used, which it logs: telemetry is never
// a reason to stop.
func openGPUMon(backend, uuid string, log zerolog.Logger) *gpumon.Device {
	n, ok := gpumon.CUDAOrdinal(backend)
	if !ok {
		return nil
	}
	var d *gpumon.Device
	var err error
	if uuid != "" {
		d, err = gpumon.OpenUUID(uuid)
	} else {
		d, err = gpumon.OpenCUDA(n)
	}
	if err != nil {
		log.Warn().Err(err).Str("device", backend).Str("uuid", uuid).Msg("no GPU telemetry")
		return nil
	}
	log.Info().Str("device", backend).Str("gpu", d.Name()).Str("uuid", d.UUID()).Int("nvml_index", d.Index()).Msg("GPU telemetry from NVML")
	return d
}

// gpuMons is the NVML telemetry of a process's GPUs, one device per
// backend that has it.
type gpuMons []*gpumon.Device

// openGPUMons opens telemetry for each of backs that runs on a GPU.
func openGPUMons(backs []kernels.Backend, log zerolog.Logger) gpuMons {
	var g gpuMons
	for _, b := range backs {
		if d := openGPUMon(b.Name(), deviceUUID(b), log); d != nil {
			g = append(g, d)
		}
	}
	return g
}

// Close closes every device.
func (g gpuMons) Close() {
	for _, d := range g {
		d.Close()
	}
}

// energy reads the GPUs' energy counters summed, or nil without GPUs.
func (g gpuMons) energy() func() (float64, error) {
	if len(g) == 0 {
		return nil
	}
	return func() (float64, error) { return gpumon.TotalEnergy(g...) }
}

// name names the GPUs for a report: "NVIDIA H200", "2 × NVIDIA H200", or
// the names joined when they differ.
func (g gpuMons) name() string {
	var names []string
	same := true
	for _, d := range g {
		names = append(names, d.Name())
		same = same && d.Name() == g[0].Name()
	}
	if len(g) > 1 && same {
		return fmt.Sprintf("%d × %s", len(g), g[0].Name())
	}
	return strings.Join(names, ", ")
}
