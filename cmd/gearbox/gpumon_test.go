package main

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestOpenGPUMon(t *testing.T) {
	var logs strings.Builder
	log := zerolog.New(&logs)
	if d := openGPUMon("cpu", "", log); d != nil {
		d.Close()
		t.Error("openGPUMon(cpu) opened a GPU")
	}
	if logs.Len() != 0 {
		t.Errorf("openGPUMon(cpu) logged %q; want nothing", logs.String())
	}
	// By ordinal (a backend with no UUID), then by a UUID no GPU has.
	for _, uuid := range []string{"", "GPU-00000000-0000-0000-0000-000000000000"} {
		logs.Reset()
		d := openGPUMon("cuda:0", uuid, log)
		if d != nil { // a GPU host, opened by ordinal
			defer d.Close()
			if uuid != "" || !strings.Contains(logs.String(), "GPU telemetry from NVML") {
				t.Errorf("uuid %q: opened %s, logged %q; want the GPU named, and no GPU found by that UUID", uuid, d.UUID(), logs.String())
			}
			continue
		}
		if !strings.Contains(logs.String(), "no GPU telemetry") || !strings.Contains(logs.String(), `"error":"`) ||
			!strings.Contains(logs.String(), `"uuid":"`+uuid+`"`) {
			t.Errorf("uuid %q: logged %q; want a warning with the reason and the UUID", uuid, logs.String())
		}
	}
}
