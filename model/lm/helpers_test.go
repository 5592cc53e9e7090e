package lm_test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
)

// tiny returns a small valid config of architecture a: hidden 32, 2
// layers, 4 heads over 2 KV heads, vocab 50; llama gets llama3 RoPE
// scaling and tied embeddings, qwen3 a head_dim other than hidden/heads.
func tiny(a lm.Arch) lm.Config {
	c := lm.Config{
		Arch: a, Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Intermediate: 48, Vocab: 50,
		RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 256, BOS: 1, EOS: []int32{2},
	}
	switch a {
	case lm.Llama:
		c.RopeScaling = &lm.RopeScaling{Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}
		c.TieEmbeddings = true
	case lm.Qwen2:
		c.QKVBias = true
	case lm.Qwen3:
		c.HeadDim = 16
		c.QKNorm = true
	}
	return c
}

// synth writes a random checkpoint of c to a new directory called name
// and returns its path.
func synth(t testing.TB, name string, sc lm.SynthConfig) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := lm.Synth(dir, sc); err != nil {
		t.Fatal(err)
	}
	return dir
}

// configJSON returns c's config.json as a map, with edits applied (a nil
// value deletes the key), encoded again.
func configJSON(t testing.TB, c lm.Config, edits map[string]any) []byte {
	t.Helper()
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	for k, v := range edits {
		if v == nil {
			delete(j, k)
		} else {
			j[k] = v
		}
	}
	out, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeFile writes data to dir/name.
func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readTensors reads the tensors of the safetensors file dir/name.
func readTensors(t testing.TB, dir, name string) []*model.Tensor {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	ts, _, err := model.ReadSafetensors(data)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// merge returns a copy of a with b's entries added.
func merge(a, b map[string]any) map[string]any {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}
