package demo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestFirstLines: whole lines while they fit, at least one.
func TestFirstLines(t *testing.T) {
	words := func(s string) int { return len(strings.Fields(s)) }
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"a b\nc\nd e f\n", 3, "a b\nc\n"},
		{"a b\nc\nd e f\n", 6, "a b\nc\nd e f\n"},
		{"a b\nc\nd e f\n", 1, "a b\n"}, // the first line even when longer
		{"a b\nc", 9, "a b\nc"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		got, n := firstLines(tt.s, tt.max, words)
		if got != tt.want || n != words(tt.want) {
			t.Errorf("firstLines(%q, %d) = %q, %d; want %q, %d", tt.s, tt.max, got, n, tt.want, words(tt.want))
		}
	}
}

// TestLastLines: whole lines from the end while they fit, at least one.
func TestLastLines(t *testing.T) {
	words := func(s string) int { return len(strings.Fields(s)) }
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"a b\nc\nd e f\n", 3, "d e f\n"},
		{"a b\nc\nd e f\n", 4, "c\nd e f\n"},
		{"a b\nc\nd e f\n", 6, "a b\nc\nd e f\n"},
		{"a b\nc d e f\n", 1, "c d e f\n"}, // the last line even when longer
		{"a b\nc", 1, "c"},
		{"a b\nc", 9, "a b\nc"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		got, n := lastLines(tt.s, tt.max, words)
		if got != tt.want || n != words(tt.want) {
			t.Errorf("lastLines(%q, %d) = %q, %d; want %q, %d", tt.s, tt.max, got, n, tt.want, words(tt.want))
		}
	}
}

// TestPrompts: the prompts are the first lines of the held-out files that
// the Go tree has, spread over the list; without any, the snippets.
func TestPrompts(t *testing.T) {
	model, err := FindModel()
	if err != nil {
		t.Fatal(err)
	}
	m, err := lm.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	// A model directory whose held-out list names files of a small Go tree.
	dir, root := t.TempDir(), t.TempDir()
	files := []string{"a/a.go", "b/missing.go", "c/c.go", "d/d.go"}
	if err := os.WriteFile(filepath.Join(dir, HeldoutFile), []byte(strings.Join(files, "\n")+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a/a.go", "c/c.go", "d/d.go"} {
		path := filepath.Join(root, "src", f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		body := "package " + filepath.Base(filepath.Dir(f)) + "\n\n" + strings.Repeat("var x = 1 + 2 + 3 + 4\n", 50)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := LMConfig{Dir: dir, GoRoot: root, Prompts: 2, PromptTokens: 40}
	ps, source, err := c.prompts(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].name != "a/a.go" || ps[1].name != "c/c.go" || !strings.HasPrefix(source, "held-out files of ") {
		t.Fatalf("prompts %+v from %q; want a/a.go and c/c.go (every other file found) from held-out files", ps, source)
	}
	for _, p := range ps {
		if !strings.HasPrefix(p.text, "package ") || !strings.HasSuffix(p.text, "\n") || p.ids > 40 || p.ids < 20 {
			t.Errorf("prompt %s is %q, %d tokens; want its first whole lines, 20 to 40 tokens", p.name, p.text, p.ids)
		}
	}

	c = LMConfig{Dir: dir, GoRoot: t.TempDir(), Prompts: 5, PromptTokens: 40}
	ps, source, err = c.prompts(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 5 || ps[0].text != snippets[0].text || ps[4].text != snippets[0].text || !strings.HasPrefix(source, "built-in Go snippets") {
		t.Errorf("prompts %+v from %q; want the snippets, in turn", ps, source)
	}
}

// TestLMJobID: a job id says its precision and prompt.
func TestLMJobID(t *testing.T) {
	for _, p := range precision.All {
		got, i, ok := lmJobIndex(lmJobID(p, 12))
		if got != p || i != 12 || !ok {
			t.Errorf("lmJobIndex(lmJobID(%s, 12)) = %s, %d, %v", p, got, i, ok)
		}
	}
	for _, id := range []string{"demo-3", "lm-fp32", "lm-fp32-x", "lm-fp32--1", warmupPrefix + "fp32"} {
		if _, _, ok := lmJobIndex(id); ok {
			t.Errorf("lmJobIndex(%q) is a language-model job", id)
		}
	}
}
