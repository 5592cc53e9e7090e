package gearbox_test

import (
	"go/build"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/gearbox-inference/gearbox"

// TestImportLayers keeps docs/architecture.md's import layers true: every
// package of the module is listed, and imports only packages of lower
// layers.
func TestImportLayers(t *testing.T) {
	doc, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```layers\n(.*?)```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/architecture.md has no ```layers block")
	}
	layer := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(block[1])), "\n") {
		n, pkgs, ok := strings.Cut(line, ":")
		l, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("layers line %q: want N: packages", line)
		}
		for _, p := range strings.Fields(pkgs) {
			layer[p] = l
		}
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "deployments") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files (for this build)
		}
		rel := filepath.ToSlash(path)
		if rel == "." {
			rel = "gearbox"
		}
		seen[rel] = true
		mine, listed := layer[rel]
		if !listed {
			t.Errorf("package %s is not in docs/architecture.md's layers", rel)
			return nil
		}
		for _, imp := range pkg.Imports { // tests may reach up (integration)
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if dep == "" {
				dep = "gearbox"
			}
			if dep == rel {
				continue
			}
			if l, ok := layer[dep]; ok && l >= mine {
				t.Errorf("%s (layer %d) imports %s (layer %d)", rel, mine, dep, l)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range layer {
		if !seen[p] {
			t.Errorf("docs/architecture.md lists %s, which is not a package", p)
		}
	}
}
