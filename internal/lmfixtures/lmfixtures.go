// Package lmfixtures unpacks testdata/lm/fixtures.tar.gz for tests: tiny
// llama, qwen2 and qwen3 checkpoints saved by transformers'
// save_pretrained, with transformers' logits and greedy continuations
// (made by testdata/lm/make_fixtures.py), each in a directory of its name.
package lmfixtures

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Archive is the fixtures' path from the repository's root.
const Archive = "testdata/lm/fixtures.tar.gz"

// maxFile bounds one file of the archive.
const maxFile = 64 << 20

// Unpack extracts the fixtures into a temporary directory of t and returns
// it: the checkpoints are in its llama, qwen2 and qwen3 directories. It
// skips the test, saying how to make them, when the archive is absent.
func Unpack(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "..", Archive))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no transformers fixtures: run `python3 testdata/lm/make_fixtures.py --out " + Archive + "` where torch and transformers are installed")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) || strings.HasPrefix(name, ".") {
			t.Fatalf("fixture entry %q is outside the archive's root", h.Name)
		}
		path := filepath.Join(root, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(io.LimitReader(tr, maxFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
