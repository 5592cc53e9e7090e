package main

import (
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/gpumon"
)

// openGPUMon opens NVML telemetry for the GPU behind a backend named
// "cuda:N". It returns nil for other backends, and when NVML cannot be
// used, which it logs: telemetry is never a reason to stop.
func openGPUMon(backend string, log zerolog.Logger) *gpumon.Device {
	n, ok := gpumon.CUDAOrdinal(backend)
	if !ok {
		return nil
	}
	d, err := gpumon.OpenCUDA(n)
	if err != nil {
		log.Warn().Err(err).Str("device", backend).Msg("no GPU telemetry")
		return nil
	}
	log.Info().Str("device", backend).Str("gpu", d.Name()).Str("uuid", d.UUID()).Int("nvml_index", d.Index()).Msg("GPU telemetry from NVML")
	return d
}
