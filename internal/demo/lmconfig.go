package demo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
	"github.com/gearbox-inference/gearbox/precision"
)

// LMConfig configures the language-model run. Zero fields take the
// defaults in comments.
type LMConfig struct {
	// Dir is the model's checkpoint directory (required; FindModel finds
	// the one Gearbox ships).
	Dir string
	// Prompts is how many prompts are run at each precision (default 16).
	Prompts int
	// PromptTokens bounds each prompt: as many whole first lines of its
	// file as fit in this many tokens (default 128).
	PromptTokens int
	// MaxTokens is every job's max_tokens (default 64); decoding is greedy.
	MaxTokens int
	// Precisions are run one after another, each with every prompt
	// (default: the model's ladder, the rungs the backend runs). The
	// first is the reference the others' tokens are compared with.
	Precisions []precision.Format
	// Walk is the most precision-auto jobs of the walk phase, after the
	// explicit precisions: the policy is set to the top of the ladder and
	// the quality loop moves it (default 480; negative: no walk). The
	// phase ends as soon as the controller holds for a reason more
	// evidence does not change (see lmwalk.go).
	Walk int
	// WalkTokens is the max_tokens of the walk's jobs (default 16); they
	// are sampled (temperature 0.8, a seed per job), so every checked
	// sequence is a different one.
	WalkTokens int
	// GoRoot is the Go tree whose src holds the files of the model's
	// heldout.txt, where the prompts come from (default: `go env GOROOT`).
	// Where none of them is there, a few built-in Go snippets stand in.
	GoRoot string
}

// ModelDir is where Gearbox ships its Go-code model, from the repository's
// root.
const ModelDir = "testdata/models/gocoder"

// HeldoutFile lists, in the model's directory, the files of the Go tree it
// was not trained on, one path under GOROOT/src per line.
const HeldoutFile = "heldout.txt"

// ErrNoModel is wrapped by FindModel's error when the shipped model is
// nowhere to be found.
var ErrNoModel = errors.New("no language model")

// FindModel returns the directory of the model Gearbox ships (ModelDir):
// under the working directory or one of its parents, else in the
// repository this package was built from (as `go run` and `go test` do).
// Its error wraps ErrNoModel.
func FindModel() (string, error) {
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dir := filepath.Join(d, ModelDir)
			if isModelDir(dir) {
				return dir, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
		tried = append(tried, wd+" and its parents")
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..", ModelDir)
		if isModelDir(dir) {
			return filepath.Clean(dir), nil
		}
		tried = append(tried, filepath.Clean(dir))
	}
	return "", fmt.Errorf("%w: %s is not in %s", ErrNoModel, ModelDir, strings.Join(tried, ", nor "))
}

func isModelDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, lm.WeightsFile))
	return err == nil
}

func (c *LMConfig) defaults() {
	if c.Prompts == 0 {
		c.Prompts = 16
	}
	if c.PromptTokens == 0 {
		c.PromptTokens = 128
	}
	if c.MaxTokens == 0 {
		c.MaxTokens = 64
	}
	if c.Walk == 0 {
		c.Walk = 480
	}
	if c.WalkTokens == 0 {
		c.WalkTokens = 16
	}
	if c.GoRoot == "" {
		c.GoRoot = goRoot()
	}
}

// load loads the model and settles the precisions to run on b.
func (c *LMConfig) load(b kernels.Backend) (*lm.Model, error) {
	c.defaults()
	if c.Dir == "" {
		return nil, fmt.Errorf("language-model run: %w: no directory given", ErrNoModel)
	}
	if c.Prompts < 1 || c.MaxTokens < 1 || c.PromptTokens < 1 || c.WalkTokens < 1 {
		return nil, fmt.Errorf("language-model run: prompts %d, prompt tokens %d, max tokens %d and walk tokens %d must be ≥ 1",
			c.Prompts, c.PromptTokens, c.MaxTokens, c.WalkTokens)
	}
	m, err := lm.Load(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("language-model run: %w", err)
	}
	if _, ok := b.(kernels.LM); !ok {
		return nil, fmt.Errorf("language-model run: backend %s runs no language models", b.Name())
	}
	if m.Tokenizer == nil {
		return nil, fmt.Errorf("language-model run: model %s has no %s: the demo's prompts are text", m.Name, lm.TokenizerFile)
	}
	if c.Precisions == nil {
		for _, p := range m.Precision.Ladder {
			if kernels.Supports(b, p) {
				c.Precisions = append(c.Precisions, p)
			}
		}
	}
	for _, p := range c.Precisions {
		if !kernels.Supports(b, p) {
			return nil, fmt.Errorf("language-model run: backend %s does not run %s", b.Name(), p)
		}
	}
	if len(c.Precisions) == 0 {
		return nil, fmt.Errorf("language-model run: backend %s runs none of model %s's ladder %v", b.Name(), m.Name, m.Precision.Ladder)
	}
	// One reference for the whole run: the quality loop judges every
	// precision's distributions against the precision the table compares
	// tokens with (the shipped model's own reference is its checkpoint's
	// bf16, against which bf16 scores KL 0 and fp32 does not).
	m.Quality.Reference = c.Precisions[0]
	return m, nil
}

// goRoot is the local Go toolchain's root: `go env GOROOT`, else $GOROOT.
func goRoot() string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		if r := strings.TrimSpace(string(out)); r != "" {
			return r
		}
	}
	return os.Getenv("GOROOT")
}

// prompt is one prompt of the language-model run.
type prompt struct {
	name string // the file it comes from, or the snippet's name
	text string
	ids  int // its tokens, as the worker encodes it
	// tail is its last whole lines, up to walkPromptTokens: the walk's
	// prompt (a check re-runs the prompt at three precisions: shorter
	// prompts, more checks a second).
	tail string
}

// snippets stand in for the held-out files where the Go tree lacks them.
var snippets = []prompt{
	{name: "snippet: imports", text: "// Package lines counts the lines of its input.\npackage main\n\nimport (\n\t\"bufio\"\n\t\"fmt\"\n"},
	{name: "snippet: method", text: "// Len returns the number of bytes of the unread portion of the buffer.\nfunc (b *Buffer) Len() int {\n\treturn "},
	{name: "snippet: loop", text: "func index(s []string, x string) int {\n\tfor i := 0; i < len(s); i++ {\n\t\tif s[i] == "},
	{name: "snippet: error", text: "func open(name string) (*File, error) {\n\tf, err := os.Open(name)\n\tif err != nil {\n"},
}

// prompts returns c.Prompts prompts: the first lines of files spread over
// the model's held-out list, or the built-in snippets where the Go tree
// has none of them. source says which.
func (c *LMConfig) prompts(m *lm.Model) (ps []prompt, source string, err error) {
	tok, err := tokenizer.ParseFiles(tokenizer.Files{Tokenizer: m.Tokenizer, Config: m.TokenizerConfig})
	if err != nil {
		return nil, "", fmt.Errorf("language-model run: model %s: %w", m.Name, err)
	}
	count := func(s string) int { return len(tok.Encode(s, true)) }
	files, err := heldout(filepath.Join(c.Dir, HeldoutFile))
	if err != nil {
		return nil, "", err
	}
	src := filepath.Join(c.GoRoot, "src")
	var found []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(src, f)); err == nil {
			found = append(found, f)
		}
	}
	if len(found) == 0 {
		source = "built-in Go snippets (no held-out file in " + src + ")"
		for i := range c.Prompts {
			p := snippets[i%len(snippets)]
			p.ids = count(p.text)
			p.tail, _ = lastLines(p.text, walkPromptTokens, count)
			ps = append(ps, p)
		}
		return ps, source, nil
	}
	source = "held-out files of " + src
	for i := range c.Prompts {
		// Spread over the list (it is sorted by path): many packages.
		f := found[i*len(found)/c.Prompts%len(found)]
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return nil, "", fmt.Errorf("language-model run: prompt: %w", err)
		}
		text, n := firstLines(string(data), c.PromptTokens, count)
		tail, _ := lastLines(text, walkPromptTokens, count)
		ps = append(ps, prompt{name: f, text: text, ids: n, tail: tail})
	}
	return ps, source, nil
}

// heldout reads a held-out list: one path a line, blank lines skipped.
func heldout(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no list: the snippets
	}
	if err != nil {
		return nil, fmt.Errorf("language-model run: %w", err)
	}
	var files []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.TrimSpace(sc.Text()); f != "" {
			files = append(files, filepath.FromSlash(f))
		}
	}
	return files, nil
}

// firstLines is the longest run of s's first whole lines that count says
// is at most max tokens (the first line alone when even it is longer),
// and its count.
func firstLines(s string, max int, count func(string) int) (string, int) {
	end, n := 0, 0
	for end < len(s) {
		next := len(s)
		if i := strings.IndexByte(s[end:], '\n'); i >= 0 {
			next = end + i + 1
		}
		k := count(s[:next])
		if k > max && end > 0 {
			break
		}
		end, n = next, k
	}
	return s[:end], n
}

// lastLines is the longest run of s's last whole lines that count says is
// at most max tokens (the last line alone when even it is longer), and its
// count.
func lastLines(s string, max int, count func(string) int) (string, int) {
	start, n := len(s), 0
	for start > 0 {
		// The line ending before start: from after the newline before it.
		prev := strings.LastIndexByte(s[:start-1], '\n') + 1
		k := count(s[prev:])
		if k > max && start < len(s) {
			break
		}
		start, n = prev, k
	}
	return s[start:], n
}
