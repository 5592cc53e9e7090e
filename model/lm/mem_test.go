package lm

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"unsafe"

	"github.com/gearbox-inference/gearbox/model"
)

// TestLoadMemKeepsTheBytes: a fetched checkpoint's weights are the fetched
// bytes themselves, not a second copy of them (a 16 GB model held twice).
func TestLoadMemKeepsTheBytes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	c := Config{Arch: Llama, Hidden: 16, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, Intermediate: 32,
		Vocab: 64, RMSEps: 1e-5, RopeTheta: 10000, MaxPositions: 64, BOS: NoToken}
	if err := Synth(dir, SynthConfig{Config: c, DType: model.DTypeBF16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	fsys, mem := fstest.MapFS{}, map[string][]byte{}
	for _, f := range []string{model.ConfigFile, WeightsFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		fsys["m/"+f], mem["m/"+f] = &fstest.MapFile{Data: data}, data
	}
	m, err := loadMem(fsys, mem, "m")
	if err != nil {
		t.Fatal(err)
	}
	want, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest != want.Digest {
		t.Errorf("digest %.12s, want Load's %.12s", m.Digest, want.Digest)
	}
	w := mem["m/"+WeightsFile]
	lo, hi := uintptr(unsafe.Pointer(&w[0])), uintptr(unsafe.Pointer(&w[len(w)-1]))
	for _, x := range m.Tensors() {
		if p := uintptr(unsafe.Pointer(&x.Data[0])); p < lo || p > hi {
			t.Fatalf("tensor %s: its bytes are a copy, not the fetched buffer", x.Name)
		}
	}
}
