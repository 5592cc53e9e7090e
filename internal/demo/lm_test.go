package demo_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/internal/demo"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestLMDemo runs the language-model part alone on the CPU backend, short:
// every job is answered once, at the precision it asked for, with the
// CPU backend's own greedy continuation of its prompt; fp32 is the
// reference the table and the side-by-side completions compare with; the
// plots are written.
func TestLMDemo(t *testing.T) {
	dir, err := demo.FindModel()
	if err != nil {
		t.Fatal(err)
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const prompts, tokens = 2, 10
	precs := []precision.Format{precision.FP32, precision.FP4}
	// A Go tree without the held-out files: the built-in snippets, the
	// same on every machine.
	rep, err := demo.Run(context.Background(), demo.Config{Jobs: -1, Workers: 2, Dir: t.TempDir(), Backend: b,
		LM: &demo.LMConfig{Dir: dir, Prompts: prompts, MaxTokens: tokens, Precisions: precs, GoRoot: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tensor != nil {
		t.Errorf("Jobs -1 ran the tensor run")
	}
	sum := rep.LM
	if got, want := sum.Results(), prompts*len(precs); got != want {
		t.Errorf("answered %d jobs; want %d", got, want)
	}
	if got := rep.Unexpected(); got != 0 {
		t.Errorf("%d results were errors, at another precision, or repeated", got)
	}

	m, err := lm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.ParseFiles(tokenizer.Files{Tokenizer: m.Tokenizer, Config: m.TokenizerConfig})
	if err != nil {
		t.Fatal(err)
	}
	stop := append(slices.Clone(m.Generation.EOS), toInt32(tok.StopIDs())...)
	for _, p := range precs {
		for i := range prompts {
			r := sum.Completion(p, i)
			if r == nil || r.Error != nil {
				t.Fatalf("%s prompt %d: result %+v", p, i, r)
			}
			ids := toInt32(tok.Encode(sum.Prompt(i), true))
			want := kerneltest.NewSession(t, b, m, p, (len(ids)+tokens)/16+2).Generate(ids, tokens)
			if k := slices.IndexFunc(want, func(id int32) bool { return slices.Contains(stop, id) }); k >= 0 {
				want = want[:k]
			}
			if !slices.Equal(r.Tokens, want) {
				t.Errorf("%s prompt %d: tokens %v; want the CPU reference's greedy %v", p, i, r.Tokens, want)
			}
			if r.TTFTMs <= 0 || r.Usage == nil || r.Usage.PromptTokens != len(ids) {
				t.Errorf("%s prompt %d: ttft_ms %v, usage %+v; want a time and %d prompt tokens", p, i, r.TTFTMs, r.Usage, len(ids))
			}
		}
	}

	stats := sum.Stats()
	if len(stats) != len(precs) {
		t.Fatalf("%d precisions' stats; want %d", len(stats), len(precs))
	}
	for i, st := range stats {
		if st.Precision != precs[i] || st.Answered != prompts || st.Failed != 0 || st.GeneratedPerSecond() <= 0 || st.PromptPerSecond() <= 0 || st.TTFT50 <= 0 {
			t.Errorf("stats %+v; want %s's, %d answered, tokens/s and TTFT measured", st, precs[i], prompts)
		}
	}
	if st := stats[0]; st.Identical != prompts || st.Agreement != 1 {
		t.Errorf("the reference agrees with itself on %d prompts, %.2f of tokens; want all", st.Identical, st.Agreement)
	}
	var out bytes.Buffer
	rep.Print(&out)
	for _, want := range []string{"language model gocoder", "generated tok/s", "TTFT p50", "same as fp32", "fp32 │", " fp4 │",
		"the reference]", "precision policy of gocoder"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}

	files, err := rep.WritePlots(t.TempDir(), ".png")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || filepath.Base(files[0]) != demo.LMPrecisionsPlot+".png" {
		t.Fatalf("plots %v; want the language model's one", files)
	}
	checkPNG(t, files[0])
}

// TestFindModel: from the package's directory, the shipped model is found
// in a parent, and loads.
func TestFindModel(t *testing.T) {
	dir, err := demo.FindModel()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(filepath.ToSlash(dir), demo.ModelDir) {
		t.Errorf("FindModel() = %s; want a path ending in %s", dir, demo.ModelDir)
	}
	if _, err := lm.Load(dir); err != nil {
		t.Error(err)
	}
}

// checkPNG decodes the picture at path.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
		t.Errorf("%s is %v; want a full-size picture", path, b)
	}
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, v := range ids {
		out[i] = int32(v)
	}
	return out
}
