//go:build cgo

package cuda

import (
	"context"
	"strings"
	"testing"
)

// TestPTXAS compiles every module with ptxas's report and fails where
// ptxas serialized a wgmma pipeline (the wide NVFP4 kernel's A fragments or
// accumulators touched while its wgmmas run: correct, but each wgmma then
// waits for the one before). Each kernel's registers, spills and shared
// memory are in the test's log (-v); spills are logged apart.
func TestPTXAS(t *testing.T) {
	b := newTestBackend(t, Config{})
	reports := 0
	err := b.do(context.Background(), func(d *devState) error {
		for _, m := range modules {
			_, log, err := nvrtcCompile(m.program(), d.comp.options(append(m.options, "--ptxas-options=-v")...))
			if err != nil {
				t.Errorf("module %s: %v", m.name, err)
				continue
			}
			if strings.Contains(log, "ptxas") {
				reports++
			}
			t.Logf("module %s:\n%s", m.name, log)
			for _, line := range strings.Split(log, "\n") {
				switch {
				case strings.Contains(line, "serialized"):
					t.Errorf("module %s: %s", m.name, strings.TrimSpace(line))
				case strings.Contains(line, "spill") && !strings.Contains(line, " 0 bytes spill stores, 0 bytes spill loads"):
					t.Logf("module %s spills: %s", m.name, strings.TrimSpace(line))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reports == 0 && !t.Failed() {
		t.Skip("NVRTC gave no ptxas report (the emulator compiles nothing)")
	}
}
