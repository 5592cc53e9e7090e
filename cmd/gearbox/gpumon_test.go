package main

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestOpenGPUMon(t *testing.T) {
	var logs strings.Builder
	log := zerolog.New(&logs)
	if d := openGPUMon("cpu", log); d != nil {
		d.Close()
		t.Error("openGPUMon(cpu) opened a GPU")
	}
	if logs.Len() != 0 {
		t.Errorf("openGPUMon(cpu) logged %q; want nothing", logs.String())
	}
	d := openGPUMon("cuda:0", log)
	if d != nil { // a GPU host
		defer d.Close()
		if !strings.Contains(logs.String(), "GPU telemetry from NVML") {
			t.Errorf("logged %q; want the GPU named", logs.String())
		}
		return
	}
	if !strings.Contains(logs.String(), "no GPU telemetry") || !strings.Contains(logs.String(), `"error":"`) {
		t.Errorf("logged %q; want a warning with the reason", logs.String())
	}
}
