package model_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/gearbox-inference/gearbox/model"
)

func ExampleSynth() {
	m, err := model.Synth(model.SynthConfig{Name: "demo", Dims: []int{64, 256, 256, 10}, Seed: 1, DType: model.DTypeBF16})
	if err != nil {
		log.Fatal(err)
	}
	for i, l := range m.Layers {
		fmt.Printf("%d %-6s %3d → %3d\n", i, l.Op, l.In, l.Out)
	}
	fmt.Println("params", m.Params(), "bytes", m.WeightBytes())
	// Output:
	// 0 linear  64 → 256
	// 1 gelu   256 → 256
	// 2 linear 256 → 256
	// 3 gelu   256 → 256
	// 4 linear 256 →  10
	// params 85002 bytes 170004
}

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "models")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	m, err := model.Synth(model.SynthConfig{Name: "tiny", Dims: []int{4, 8, 2}, Softmax: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := model.Save(m, filepath.Join(dir, "tiny")); err != nil {
		log.Fatal(err)
	}
	back, err := model.Load(filepath.Join(dir, "tiny"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.Name, back.InputFeatures, "→", back.OutputFeatures, back.Digest == m.Digest)
	// Output: tiny 4 → 2 true
}
