package cpu_test

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
	"github.com/gearbox-inference/gearbox/precision"
)

// gocoderDir is the Go-code model Gearbox ships (testdata/models).
const gocoderDir = "../../testdata/models/gocoder"

// gocoderGolden is golden.json beside it: transformers' greedy
// continuations and last-position logits of held-out prompts, from the
// shipped bf16 weights computed in fp32.
type gocoderGolden struct {
	Cases []struct {
		File       string    `json:"file"`
		PromptIDs  []int32   `json:"prompt_ids"`
		GreedyIDs  []int32   `json:"greedy_ids"`
		GreedyText string    `json:"greedy_text"`
		LastLogits []float64 `json:"last_logits"`
	} `json:"cases"`
}

func loadGocoder(t testing.TB) (*lm.Model, *tokenizer.Tokenizer, gocoderGolden) {
	t.Helper()
	m, err := lm.Load(gocoderDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(gocoderDir)
	if err != nil {
		t.Fatal(err)
	}
	var g gocoderGolden
	data, err := os.ReadFile(filepath.Join(gocoderDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return m, tok, g
}

// TestGocoderMatchesTransformers: the shipped model, run by the CPU backend
// at fp32 on its own tokenizer, continues held-out Go files exactly as
// transformers does, and its logits agree.
func TestGocoderMatchesTransformers(t *testing.T) {
	m, tok, g := loadGocoder(t)
	b := newBackend(t, 0)
	cases := g.Cases
	if testing.Short() {
		cases = cases[:2]
	}
	for _, c := range cases {
		// The tokenizer's decode and encode of the prompt round-trip.
		text, err := tok.Decode(toInts(c.PromptIDs), false)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode(text, false); !slices.Equal(got, toInts(c.PromptIDs)) {
			t.Errorf("%s: re-encoding the prompt gives %d ids; want the %d transformers was given", c.File, len(got), len(c.PromptIDs))
		}
		logits := kerneltest.NewSession(t, b, m, precision.FP32, 16).PrefillLogits(c.PromptIDs)
		if e := kerneltest.RelL2(logits, c.LastLogits); e > 1e-5 {
			t.Errorf("%s: last-position logits differ from transformers' by %.3g (relative L2); want ≤ 1e-5", c.File, e)
		}
		gen := kerneltest.NewSession(t, b, m, precision.FP32, 16).Generate(c.PromptIDs, len(c.GreedyIDs))
		if !slices.Equal(gen, c.GreedyIDs) {
			got, _ := tok.Decode(toInts(gen), false)
			t.Errorf("%s: greedy continuation\n got %q\nwant %q", c.File, got, c.GreedyText)
		}
	}
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, v := range ids {
		out[i] = int(v)
	}
	return out
}

// BenchmarkGocoderPrecisions measures what each precision does to the
// shipped model on held-out Go files of the local toolchain (listed in
// heldout.txt): perplexity, and against bf16 (the checkpoint's own dtype)
// the mean per-token KL divergence and top-1 agreement. Run with
//
//	go test -run '^$' -bench GocoderPrecisions -benchtime 1x ./kernels/cpu/
func BenchmarkGocoderPrecisions(b *testing.B) {
	m, tok, _ := loadGocoder(b)
	texts := heldoutTexts(b, 12, 256, tok)
	be := newBackend(b, 0)
	dist := func(p precision.Format) [][][]float64 { // text → position → log-probs
		var out [][][]float64
		for _, ids := range texts {
			logits := kerneltest.NewSession(b, be, m, p, 32).DecodeLogits(ids)
			var rows [][]float64
			for i := range len(ids) - 1 {
				rows = append(rows, logSoftmax(logits[i*m.Config.Vocab:(i+1)*m.Config.Vocab]))
			}
			out = append(out, rows)
		}
		return out
	}
	for range b.N {
		ref := dist(precision.BF16)
		for _, p := range []precision.Format{precision.FP32, precision.TF32, precision.BF16, precision.FP16, precision.FP8, precision.FP4} {
			d := ref
			if p != precision.BF16 {
				d = dist(p)
			}
			var nll, kl float64
			var n, agree int
			for ti, ids := range texts {
				for i := range len(ids) - 1 {
					q, r := d[ti][i], ref[ti][i]
					nll -= q[ids[i+1]]
					for v := range r {
						kl += math.Exp(r[v]) * (r[v] - q[v])
					}
					if argmaxF(q) == argmaxF(r) {
						agree++
					}
					n++
				}
			}
			b.ReportMetric(math.Exp(nll/float64(n)), string(p)+"-ppl")
			b.ReportMetric(kl/float64(n), string(p)+"-kl")
			b.ReportMetric(float64(agree)/float64(n), string(p)+"-top1")
		}
	}
}

// heldoutTexts tokenizes up to n held-out files of the local Go toolchain,
// each cut to at most max tokens.
func heldoutTexts(b *testing.B, n, max int, tok *tokenizer.Tokenizer) [][]int32 {
	f, err := os.Open(filepath.Join(gocoderDir, "heldout.txt"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("no go command to find the Go tree: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	var out [][]int32
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < n {
		data, err := os.ReadFile(filepath.Join(src, strings.TrimSpace(sc.Text())))
		if err != nil {
			continue // a file of another Go version
		}
		ids := tok.Encode(string(data), false)
		if len(ids) > max {
			ids = ids[:max]
		}
		t := make([]int32, len(ids))
		for i, v := range ids {
			t[i] = int32(v)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		b.Skip("none of the held-out files is in this Go toolchain's src")
	}
	return out
}

func logSoftmax(x []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	ls := mx + math.Log(s)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - ls
	}
	return out
}

func argmaxF(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
