package main

import (
	"encoding/json"
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/internal/lmbench"
	"github.com/gearbox-inference/gearbox/internal/lmfixtures"
)

func TestBenchLM(t *testing.T) {
	root := lmfixtures.Unpack(t)
	dir := t.TempDir()
	out, plot := filepath.Join(dir, "lm.json"), filepath.Join(dir, "lm.png")
	env := []string{"GEARBOX_DEVICE=cpu", "GEARBOX_LOG_LEVEL=warn", "GEARBOX_KV_BYTES=4194304"}
	code, stdout, stderr := runCLI(t, env, "bench", "lm", "--tight", filepath.Join(root, "llama"), "--loose", filepath.Join(root, "qwen2"),
		"--jobs", "16", "--prompt-min", "4", "--prompt-max", "16", "--output-min", "2", "--output-max", "8", "--in-flight", "4",
		"--quality-sample", "1", "--quality-budget", "0.5", "--quality-min-samples", "2", "--quality-cooldown", "1ms", "--slices", "3",
		"--store-dir", filepath.Join(dir, "store"), "--json", out, "--plot", plot)
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	for _, want := range []string{"headline, auto / bf16", "auto phase: jobs served per precision", "energy unavailable"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	var rep lmbench.Report
	b := readJSON(t, out, &rep)
	if rep.Device != "cpu" || rep.Jobs != 16 || len(rep.Models) != 2 || rep.Models[0].Label != "tight" || rep.Models[1].MaxKL != 0.1 ||
		len(rep.Phases) != 2 || rep.Phases[0].Answered != 16 || rep.Phases[1].Answered != 16 || rep.Quality.MinSamples != 2 || rep.Quality.Budget != 0.5 {
		t.Errorf("report %s; want 16 jobs a phase on cpu, llama tight, qwen2 at the default loose target 0.1, 2 reports a step, checks within half the time", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "store", "jetstream")); err != nil {
		t.Errorf("--store-dir: %v", err)
	}
	checkPNG(t, plot)
}

func TestBenchLMFlags(t *testing.T) {
	root := lmfixtures.Unpack(t)
	models := []string{"--tight", filepath.Join(root, "llama"), "--loose", filepath.Join(root, "qwen2")}
	env := []string{"GEARBOX_DEVICE=cpu"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tight", filepath.Join(root, "llama")}, "--tight and --loose are required"},
		{append([]string{"--start", "auto"}, models...), `--start "auto" is not a concrete precision`},
		{append([]string{"--prompt-min", "100", "--prompt-max", "10"}, models...), "prompt tokens 100 to 10"},
		{append([]string{"--output-min", "20", "--output-max", "10"}, models...), "output tokens 20 to 10"},
		{append([]string{"--in-flight", "-1"}, models...), "in-flight limit -1"},
		{append([]string{"--tight-kl", "3"}, models...), "KL target 3 must be in (0, 1]"},
		{append([]string{"--quality-sample", "2"}, models...), "quality sample 2"},
		{append([]string{"--quality-budget", "1.5"}, models...), "quality budget 1.5"},
		{models, "context is 256 tokens"}, // the default prompts and outputs
		{[]string{"--tight", filepath.Join(root, "llama"), "--loose", filepath.Join(root, "llama"), "--prompt-max", "64", "--output-max", "64"}, "both model llama"},
	} {
		code, _, stderr := runCLI(t, env, append([]string{"bench", "lm"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("bench lm %v: exit status %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// readJSON decodes the JSON file at path into v and returns its bytes.
func readJSON(t *testing.T, path string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v in %s", path, err, b)
	}
	return b
}

// checkPNG checks that a --plot file is a PNG.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, format, err := image.DecodeConfig(f); err != nil || format != "png" {
		t.Errorf("--plot wrote no PNG: %q, %v", format, err)
	}
}
