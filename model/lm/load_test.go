package lm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
)

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		arch   lm.Arch
		dtype  string
		shards int
	}{
		{lm.Llama, model.DTypeF32, 1},
		{lm.Qwen2, model.DTypeBF16, 1},
		{lm.Qwen3, model.DTypeF16, 3},
	} {
		t.Run(string(tc.arch), func(t *testing.T) {
			c := tiny(tc.arch)
			dir := synth(t, "tiny-"+string(tc.arch), lm.SynthConfig{Config: c, DType: tc.dtype, Seed: 7, Shards: tc.shards})
			writeFile(t, dir, lm.TokenizerFile, []byte(`{"model":{}}`))
			m, err := lm.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "tiny-"+string(tc.arch) {
				t.Errorf("name %q; want the directory's", m.Name)
			}
			if !reflect.DeepEqual(m.Config, c) {
				t.Errorf("config %+v; want %+v", m.Config, c)
			}
			if string(m.Tokenizer) != `{"model":{}}` || m.TokenizerConfig != nil {
				t.Errorf("tokenizer %q, tokenizer config %q; want the file and nil", m.Tokenizer, m.TokenizerConfig)
			}

			// Every tensor of the files is bound, bit for bit, once.
			files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
			if len(files) != tc.shards {
				t.Fatalf("%d weight files; want %d", len(files), tc.shards)
			}
			stored := map[string]*model.Tensor{}
			h := sha256.New()
			cfg, _ := os.ReadFile(filepath.Join(dir, model.ConfigFile))
			h.Write(cfg)
			var fileBytes int64
			for _, f := range files { // Glob sorts
				data, _ := os.ReadFile(f)
				h.Write(data)
				fileBytes += int64(len(data))
				for _, x := range readTensors(t, dir, filepath.Base(f)) {
					stored[x.Name] = x
				}
			}
			bound := m.Tensors()
			if len(bound) != len(stored) {
				t.Errorf("%d tensors bound; the files hold %d", len(bound), len(stored))
			}
			var params, bytes int64
			for _, b := range bound {
				s, ok := stored[b.Name]
				if !ok {
					t.Fatalf("bound tensor %q is in no file", b.Name)
				}
				if b.DType != tc.dtype || !slices.Equal(b.Shape, s.Shape) || !slices.Equal(b.Float32(nil), s.Data) {
					t.Errorf("tensor %q: bound %s %v differs from the file's %s %v", b.Name, b.DType, b.Shape, s.DType, s.Shape)
				}
				params += int64(len(s.Data))
				bytes += int64(len(s.Data) * model.DTypeSize(tc.dtype))
			}
			if m.Params() != params || m.WeightBytes() != bytes || bytes >= fileBytes {
				t.Errorf("Params %d, WeightBytes %d; want %d, %d (< %d bytes of files)", m.Params(), m.WeightBytes(), params, bytes, fileBytes)
			}
			if want := hex.EncodeToString(h.Sum(nil)); m.Digest != want {
				t.Errorf("digest %s; want SHA-256 of config.json and the weight files, %s", m.Digest, want)
			}

			w := m.Weights
			if (w.Head == w.Embed) != c.TieEmbeddings {
				t.Errorf("head is the embedding: %v; want %v", w.Head == w.Embed, c.TieEmbeddings)
			}
			for i, l := range w.Layers {
				if (l.Q.Bias != nil) != c.QKVBias || (l.O.Bias != nil) != c.OBias || (l.QNorm != nil) != c.QKNorm {
					t.Errorf("layer %d: q bias %v, o bias %v, q norm %v; want %v, %v, %v", i, l.Q.Bias != nil, l.O.Bias != nil, l.QNorm != nil, c.QKVBias, c.OBias, c.QKNorm)
				}
				if l.Q.Out() != c.QDim() || l.K.Out() != c.KVDim() || l.O.In() != c.QDim() || l.Down.In() != c.Intermediate {
					t.Errorf("layer %d: projection shapes q %v k %v o %v down %v", i, l.Q.Weight.Shape, l.K.Weight.Shape, l.O.Weight.Shape, l.Down.Weight.Shape)
				}
			}

			// Loading again gives the same digest; LoadFS the same model.
			again, err := lm.LoadFS(os.DirFS(filepath.Dir(dir)), filepath.Base(dir))
			if err != nil {
				t.Fatal(err)
			}
			if again.Digest != m.Digest || again.Name != m.Name {
				t.Errorf("LoadFS: %s %s; want %s %s", again.Name, again.Digest, m.Name, m.Digest)
			}
		})
	}
}

// TestLoadShardedEqualsUnsharded: the same weights split into shards load
// to the same tensors.
func TestLoadShardedEqualsUnsharded(t *testing.T) {
	sc := lm.SynthConfig{Config: tiny(lm.Llama), Seed: 3}
	one, err := lm.Load(synth(t, "one", sc))
	if err != nil {
		t.Fatal(err)
	}
	sc.Shards = 4
	four, err := lm.Load(synth(t, "four", sc))
	if err != nil {
		t.Fatal(err)
	}
	a, b := one.Tensors(), four.Tensors()
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Errorf("tensor %d: %s and %s differ", i, a[i].Name, b[i].Name)
		}
	}
}

// rewrite replaces the tensors of dir/file by edit's result.
func rewrite(t *testing.T, dir, file string, edit func([]*model.Tensor) []*model.Tensor) {
	t.Helper()
	ts := edit(readTensors(t, dir, file))
	var buf bytes.Buffer
	if err := model.WriteSafetensors(&buf, ts); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, file, buf.Bytes())
}

// without returns ts less the tensor called name.
func without(ts []*model.Tensor, name string) []*model.Tensor {
	return slices.DeleteFunc(ts, func(x *model.Tensor) bool { return x.Name == name })
}

// rewriteIndex edits the weight_map of dir's index.
func rewriteIndex(t *testing.T, dir string, edit func(map[string]string)) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, lm.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	edit(idx.WeightMap)
	data, _ = json.Marshal(idx)
	writeFile(t, dir, lm.IndexFile, data)
}

func TestLoadErrors(t *testing.T) {
	const q0 = "model.layers.0.self_attn.q_proj.weight"
	for _, tc := range []struct {
		name   string
		arch   lm.Arch
		shards int
		edit   func(t *testing.T, dir string)
		want   error
		msgs   []string // substrings of the error
	}{
		{"no config", lm.Qwen2, 1, func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, model.ConfigFile)) },
			fs.ErrNotExist, []string{model.ConfigFile}},
		{"unsupported config", lm.Qwen2, 1, func(t *testing.T, dir string) {
			writeFile(t, dir, model.ConfigFile, configJSON(t, tiny(lm.Qwen2), map[string]any{"rope_scaling": map[string]any{"rope_type": "yarn", "factor": 4}}))
		}, lm.ErrUnsupported, []string{model.ConfigFile, `rope_scaling.rope_type "yarn" is not supported (want llama3)`}},
		{"no weights", lm.Qwen2, 1, func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, lm.WeightsFile)) },
			fs.ErrNotExist, []string{lm.WeightsFile, lm.IndexFile}},
		{"missing tensor", lm.Qwen2, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor { return without(ts, q0) })
		}, lm.ErrTensorMismatch, []string{q0, "missing from model.safetensors"}},
		{"missing bias", lm.Qwen2, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
				return without(ts, "model.layers.1.self_attn.v_proj.bias")
			})
		}, lm.ErrTensorMismatch, []string{"model.layers.1.self_attn.v_proj.bias", "missing"}},
		{"missing q_norm", lm.Qwen3, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
				return without(ts, "model.layers.0.self_attn.q_norm.weight")
			})
		}, lm.ErrTensorMismatch, []string{"model.layers.0.self_attn.q_norm.weight", "missing"}},
		{"missing head", lm.Qwen2, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor { return without(ts, "lm_head.weight") })
		}, lm.ErrTensorMismatch, []string{`"lm_head.weight" is missing`}},
		{"wrong shape", lm.Qwen2, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
				for _, x := range ts {
					if x.Name == q0 {
						x.Shape = []int{64, 16}
					}
				}
				return ts
			})
		}, lm.ErrTensorMismatch, []string{lm.WeightsFile, q0, "has shape [64 16], want [32 32]"}},
		{"wrong kv shape", lm.Qwen2, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
				for _, x := range ts {
					if x.Name == "model.layers.0.self_attn.k_proj.weight" {
						x.Shape = []int{8, 64}
					}
				}
				return ts
			})
		}, lm.ErrTensorMismatch, []string{"k_proj.weight", "has shape [8 64], want [16 32]"}},
		{"extra layer", lm.Qwen2, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
				return append(ts, &model.Tensor{Name: "model.layers.2.input_layernorm.weight", Shape: []int{32}, Data: make([]float32, 32)})
			})
		}, lm.ErrTensorMismatch, []string{lm.WeightsFile, "model.layers.2.input_layernorm.weight", "not part of the model", "num_hidden_layers 2"}},
		{"head when tied", lm.Llama, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
				return append(ts, &model.Tensor{Name: "lm_head.weight", Shape: []int{50, 32}, Data: make([]float32, 50*32)})
			})
		}, lm.ErrTensorMismatch, []string{`"lm_head.weight"`, "tie_word_embeddings is true", "differs"}},
		{"bias without attention_bias", lm.Llama, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
				return append(ts, &model.Tensor{Name: "model.layers.0.self_attn.q_proj.bias", Shape: []int{32}, Data: make([]float32, 32)})
			})
		}, lm.ErrTensorMismatch, []string{"q_proj.bias", "attention_bias false"}},
		{"unsupported dtype", lm.Qwen2, 1, func(t *testing.T, dir string) {
			ts := readTensors(t, dir, lm.WeightsFile)
			var buf bytes.Buffer
			model.WriteSafetensors(&buf, without(ts, "model.norm.weight"))
			// Splice in an I64 tensor by hand: WriteSafetensors refuses it.
			data := buf.Bytes()
			writeFile(t, dir, lm.WeightsFile, spliceTensor(t, data, "model.norm.weight", "I64", []int{32}, make([]byte, 32*8)))
		}, model.ErrInvalidSafetensors, []string{lm.WeightsFile, `"model.norm.weight"`, `"I64"`}},
		{"NaN weight", lm.Qwen2, 1, func(t *testing.T, dir string) {
			rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor { return without(ts, "model.norm.weight") })
			data, _ := os.ReadFile(filepath.Join(dir, lm.WeightsFile))
			nan := make([]byte, 0, 32*4)
			for range 32 {
				nan = append(nan, 0, 0, 0xc0, 0x7f) // a float32 NaN
			}
			writeFile(t, dir, lm.WeightsFile, spliceTensor(t, data, "model.norm.weight", "F32", []int{32}, nan))
		}, model.ErrInvalidSafetensors, []string{`"model.norm.weight"`, "NaN"}},
		{"shard outside the directory", lm.Qwen2, 2, func(t *testing.T, dir string) {
			rewriteIndex(t, dir, func(m map[string]string) { m[q0] = "../model-00001-of-00002.safetensors" })
		}, model.ErrInvalidSafetensors, []string{lm.IndexFile, "../model-00001-of-00002.safetensors", "not the name of a .safetensors file"}},
		{"index puts a tensor elsewhere", lm.Qwen2, 2, func(t *testing.T, dir string) {
			rewriteIndex(t, dir, func(m map[string]string) {
				if m[q0] == "model-00001-of-00002.safetensors" {
					m[q0] = "model-00002-of-00002.safetensors"
				} else {
					m[q0] = "model-00001-of-00002.safetensors"
				}
			})
		}, lm.ErrTensorMismatch, []string{q0, "is in this shard, but model.safetensors.index.json puts it in"}},
		{"index omits a tensor", lm.Qwen2, 2, func(t *testing.T, dir string) {
			rewriteIndex(t, dir, func(m map[string]string) { delete(m, q0) })
		}, lm.ErrTensorMismatch, []string{q0, "does not list it"}},
		{"index lists a tensor no shard has", lm.Qwen2, 2, func(t *testing.T, dir string) {
			rewriteIndex(t, dir, func(m map[string]string) { m["model.layers.0.extra"] = "model-00001-of-00002.safetensors" })
		}, lm.ErrTensorMismatch, []string{"model.layers.0.extra", "is not in model-00001-of-00002.safetensors"}},
		{"missing shard", lm.Qwen2, 2, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
		}, fs.ErrNotExist, []string{"model-00002-of-00002.safetensors"}},
		{"tensor in two shards", lm.Qwen2, 2, func(t *testing.T, dir string) {
			var norm *model.Tensor
			for _, x := range readTensors(t, dir, "model-00001-of-00002.safetensors") {
				if x.Name == "model.norm.weight" {
					norm = x
				}
			}
			file := "model-00002-of-00002.safetensors"
			if norm == nil {
				for _, x := range readTensors(t, dir, file) {
					if x.Name == "model.norm.weight" {
						norm = x
					}
				}
				file = "model-00001-of-00002.safetensors"
			}
			rewrite(t, dir, file, func(ts []*model.Tensor) []*model.Tensor { return append(ts, norm) })
		}, lm.ErrTensorMismatch, []string{`"model.norm.weight" is in this shard, but`}},
		{"bad generation config", lm.Qwen2, 1, func(t *testing.T, dir string) {
			writeFile(t, dir, lm.GenerationFile, []byte(`{"top_p": 2}`))
		}, lm.ErrInvalidConfig, []string{lm.GenerationFile, "top_p 2"}},
		{"bad model.json", lm.Qwen2, 1, func(t *testing.T, dir string) {
			writeFile(t, dir, model.ManifestFile, []byte(`{"input_features": 3}`))
		}, model.ErrInvalidManifest, []string{model.ManifestFile, "input_features"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := synth(t, "m", lm.SynthConfig{Config: tiny(tc.arch), Shards: tc.shards})
			tc.edit(t, dir)
			_, err := lm.Load(dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v; want %v", err, tc.want)
			}
			for _, s := range tc.msgs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

// spliceTensor returns the safetensors file data with one more tensor,
// of any dtype, at the end of its buffer.
func spliceTensor(t *testing.T, data []byte, name, dtype string, shape []int, raw []byte) []byte {
	t.Helper()
	n := int(data[0]) | int(data[1])<<8 | int(data[2])<<16 | int(data[3])<<24
	var header map[string]any
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	buf := data[8+n:]
	header[name] = map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int{len(buf), len(buf) + len(raw)}}
	h, _ := json.Marshal(header)
	out := []byte{byte(len(h)), byte(len(h) >> 8), byte(len(h) >> 16), byte(len(h) >> 24), 0, 0, 0, 0}
	out = append(out, h...)
	out = append(out, buf...)
	return append(out, raw...)
}

// TestLoadTiedHeadCopy: a tied checkpoint that stores the head anyway, as
// a bit-for-bit copy of the embedding, loads.
func TestLoadTiedHeadCopy(t *testing.T) {
	dir := synth(t, "tied", lm.SynthConfig{Config: tiny(lm.Llama)})
	rewrite(t, dir, lm.WeightsFile, func(ts []*model.Tensor) []*model.Tensor {
		for _, x := range ts {
			if x.Name == "model.embed_tokens.weight" {
				head := *x
				head.Name = "lm_head.weight"
				return append(ts, &head)
			}
		}
		t.Fatal("no embedding")
		return nil
	})
	m, err := lm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Weights.Head != m.Weights.Embed {
		t.Error("the head of a tied model is not its embedding")
	}
}

// TestLoadName: model.json's name wins; without one the directory's name
// must be a valid model name.
func TestLoadName(t *testing.T) {
	dir := synth(t, "has space", lm.SynthConfig{Config: tiny(lm.Qwen2)})
	if _, err := lm.Load(dir); !errors.Is(err, model.ErrInvalidManifest) || !strings.Contains(err.Error(), `directory's name "has space"`) {
		t.Errorf("got error %v; want %v about the directory's name", err, model.ErrInvalidManifest)
	}
	writeFile(t, dir, model.ManifestFile, []byte(`{"name":"given","version":"1.0"}`))
	m, err := lm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "given" || m.Version != "1.0" {
		t.Errorf("name %q version %q; want given 1.0", m.Name, m.Version)
	}
}

// TestLoadPeakMemory loads a checkpoint of tens of MB (a few MB under
// -race) and checks that the
// bytes allocated while loading — an upper bound on the heap's peak growth
// — stay within 1.3× the checkpoint: nothing is widened to float32.
func TestLoadPeakMemory(t *testing.T) {
	c := lm.Config{Arch: lm.Llama, Hidden: 512, Layers: 4, Heads: 8, KVHeads: 4, HeadDim: 64, Intermediate: 1536,
		Vocab: 4096, RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 4096, BOS: lm.NoToken}
	minSize := int64(20 << 20)
	if raceEnabled {
		c.Hidden, c.Intermediate, c.Vocab, minSize = 128, 384, 1024, 1<<20
	}
	dir := synth(t, "big", lm.SynthConfig{Config: c, DType: model.DTypeBF16, Shards: 2})
	var size int64
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		fi, _ := os.Stat(f)
		size += fi.Size()
	}
	if size < minSize {
		t.Fatalf("checkpoint is %d bytes; want at least %d", size, minSize)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := lm.Load(dir)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	ratio := float64(allocated) / float64(size)
	t.Logf("checkpoint %.1f MB; loading allocated %.1f MB (%.3f×)", float64(size)/1e6, float64(allocated)/1e6, ratio)
	if ratio > 1.3 {
		t.Errorf("loading allocated %.2f× the checkpoint's %d bytes; want ≤ 1.3×", ratio, size)
	}
	if got := m.WeightBytes(); got > size || float64(got) < 0.99*float64(size) {
		t.Errorf("WeightBytes %d; want about the checkpoint's %d", got, size)
	}
	runtime.KeepAlive(m)
}

// TestLoadAll: a models directory holding language models and tensor
// models loads the language models, by name, and reports a name given
// twice.
func TestLoadAll(t *testing.T) {
	root := t.TempDir()
	c := tiny(lm.Llama)
	for _, d := range []string{"b-model", "a-model"} {
		if err := lm.Synth(filepath.Join(root, d), lm.SynthConfig{Config: c, Seed: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "tensor"), 0o755); err != nil { // no config.json: not a language model
		t.Fatal(err)
	}
	ms, err := lm.LoadAll(root)
	if err != nil || len(ms) != 2 || ms[0].Name != "a-model" || ms[1].Name != "b-model" {
		t.Fatalf("LoadAll: %v, %d models", err, len(ms))
	}
	dup := &lm.Manifest{Name: "a-model"}
	if err := lm.Synth(filepath.Join(root, "c-model"), lm.SynthConfig{Config: c, Seed: 1, Manifest: dup}); err != nil {
		t.Fatal(err)
	}
	ms, err = lm.LoadAll(root)
	if !errors.Is(err, model.ErrDuplicateModel) || len(ms) != 1 || ms[0].Name != "b-model" {
		t.Errorf("LoadAll with a name twice: %v, %d models; want ErrDuplicateModel and b-model alone", err, len(ms))
	}
}
