package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// gocoder is the Go-code model Gearbox ships.
const gocoder = "../../testdata/models/gocoder"

// gocoderGolden is the first case of gocoder's golden.json: a held-out
// prompt and transformers' greedy continuation of it, ids and text.
func gocoderGolden(t *testing.T) (promptIDs, greedyIDs []int, greedyText string) {
	t.Helper()
	data, err := os.ReadFile(gocoder + "/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			PromptIDs  []int  `json:"prompt_ids"`
			GreedyIDs  []int  `json:"greedy_ids"`
			GreedyText string `json:"greedy_text"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	c := g.Cases[0]
	return c.PromptIDs, c.GreedyIDs, c.GreedyText
}

func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, " ")
}

// TestGenerateMatchesTransformers: gearbox generate, greedy at fp32 on the
// CPU, continues a held-out prompt as transformers does (up to an
// end-of-text token, where generate stops and transformers' golden run
// went on), streaming the text to stdout and its speed to stderr.
func TestGenerateMatchesTransformers(t *testing.T) {
	promptIDs, greedyIDs, want := gocoderGolden(t)
	tok, err := tokenizer.Load(gocoder)
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := tok.Decode(promptIDs, false)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, nil, "generate", "--model", gocoder, "--prompt", prompt,
		"--max-tokens", fmt.Sprint(len(greedyIDs)), "--precision", "fp32", "--temperature", "0", "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := strings.TrimSuffix(stdout, "\n")
	switch {
	case got == want:
		if !strings.Contains(stderr, "finish length") {
			t.Errorf("stderr %q: want finish length", stderr)
		}
	case strings.HasPrefix(want, got) && strings.Contains(stderr, "finish stop"):
	default:
		t.Errorf("generated\n%q\nwant (transformers' greedy continuation)\n%q\nstderr: %s", got, want, stderr)
	}
	for _, s := range []string{"fp32 on cpu", "prompt ", "tok/s"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr %q lacks %q", stderr, s)
		}
	}
}

// TestGenerateErrors: bad flags name the flag; a directory that is no
// checkpoint names what is missing.
func TestGenerateErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--prompt", "x"}, "--model and --prompt are required"},
		{[]string{"--model", gocoder, "--prompt", "x", "--top-p", "1.5"}, "--top-p 1.5"},
		{[]string{"--model", gocoder, "--prompt", "x", "--max-tokens", "0"}, "--max-tokens 0"},
		{[]string{"--model", gocoder, "--prompt", "x", "--precision", "fp7"}, "--precision"},
		{[]string{"--model", gocoder, "--prompt", "x", "--max-tokens", "100000", "--device", "cpu"}, "context"},
		{[]string{"--model", t.TempDir(), "--prompt", "x"}, "config.json"},
	} {
		code, _, stderr := runCLI(t, nil, append([]string{"generate"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("generate %q: exit %d, stderr %q; want failure naming %q", c.args, code, stderr, c.want)
		}
	}
}

// TestTokenize: ids of each line, one line per line, and back; decoding
// transformers' greedy ids gives transformers' text.
func TestTokenize(t *testing.T) {
	_, greedyIDs, greedyText := gocoderGolden(t)
	lines := "package main\n\nfunc main() {\tfmt.Println(\"héllo, 世界\") }\n"
	enc := runStdin(t, lines, "tokenize", "--model", gocoder)
	if n := strings.Count(enc, "\n"); n != 3 {
		t.Fatalf("3 lines in, %d out: %q", n, enc)
	}
	if dec := runStdin(t, enc, "tokenize", "--model", gocoder, "--decode"); dec != lines {
		t.Errorf("encode then decode gives %q; want %q", dec, lines)
	}
	dec := runStdin(t, joinIDs(greedyIDs)+"\n", "tokenize", "--model", gocoder, "--decode", "--json")
	var got string
	if err := json.Unmarshal([]byte(dec), &got); err != nil {
		t.Fatalf("--json output %q: %v", dec, err)
	}
	if got != greedyText {
		t.Errorf("decoded %q; want transformers' %q", got, greedyText)
	}
	code, _, stderr := runCLIStdin(t, "1 2 x\n", "tokenize", "--model", gocoder, "--decode")
	if code == 0 || !strings.Contains(stderr, `stdin line 1: token id "x"`) {
		t.Errorf("a bad id: exit %d, stderr %q", code, stderr)
	}
}

func runStdin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLIStdin(t, stdin, args...)
	if code != 0 {
		t.Fatalf("%q: exit %d: %s", args, code, stderr)
	}
	return stdout
}

// TestInspectLanguageModel: model inspect --error on a checkpoint measures
// every rung of its ladder against fp32: fp32 exactly, the cheaper formats
// with a KL divergence that grows as they get cheaper.
func TestInspectLanguageModel(t *testing.T) {
	code, stdout, stderr := runCLI(t, nil, "model", "inspect", "--error", "--tokens", "32", gocoder)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	kl := map[string]float64{}
	for _, line := range strings.Split(stdout, "\n") {
		var p string
		var k, top1, rel float64
		if n, _ := fmt.Sscanf(strings.TrimSpace(line), "%s %g %g %g", &p, &k, &top1, &rel); n == 4 {
			kl[p] = k
		}
	}
	if len(kl) != 5 || kl["fp32"] != 0 || !(kl["bf16"] > 0 && kl["bf16"] < kl["fp8"] && kl["fp8"] < kl["fp4"]) {
		t.Errorf("KL per precision %v; want fp32 0 < bf16 < fp8 < fp4:\n%s", kl, stdout)
	}
	if !strings.Contains(stdout, "llama: 6 layers") {
		t.Errorf("no architecture line:\n%s", stdout)
	}
}
