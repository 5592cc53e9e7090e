//go:build cgo

package cuda

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sources holds src/: the kernel sources (.cu, one per op family) and the
// headers they include (.cuh, .h), compiled at run time by NVRTC.
//
//go:embed src/*.cu src/*.cuh src/*.h
var sources embed.FS

// srcFile is one file of src/: its name (as #include names it) and text.
type srcFile struct{ name, text string }

// srcFiles returns every file of src/, sorted by name.
func srcFiles() []srcFile {
	ents, err := sources.ReadDir("src")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	files := make([]srcFile, 0, len(ents))
	for _, e := range ents {
		b, err := sources.ReadFile("src/" + e.Name())
		if err != nil {
			panic(err)
		}
		files = append(files, srcFile{e.Name(), string(b)})
	}
	return files
}

// program is one NVRTC compilation: a source and the files its #include
// directives may name, passed to nvrtcCreateProgram as headers.
type program struct {
	name    string    // the program's name in NVRTC's messages
	src     string    // the source
	headers []srcFile // sorted by name
}

// archOption is NVRTC's --gpu-architecture for compute capability
// major.minor: sm_90a on 9.0 (wgmma needs the "a" target), sm_XY otherwise.
func archOption(major, minor int) string {
	if major == 9 && minor == 0 {
		return "--gpu-architecture=sm_90a"
	}
	return fmt.Sprintf("--gpu-architecture=sm_%d%d", major, minor)
}

// compiler compiles CUDA C with NVRTC and caches cubins on disk.
type compiler struct {
	arch    string // archOption
	version string // "13.0"
	dir     string // cache folder, or "off"

	// compiles counts NVRTC runs (cache misses), for tests.
	compiles int
}

func newCompiler(major, minor int, dir string) (*compiler, error) {
	a, b, err := nvrtcVersion()
	if err != nil {
		return nil, err
	}
	return &compiler{arch: archOption(major, minor), version: fmt.Sprintf("%d.%d", a, b), dir: dir}, nil
}

// options returns the NVRTC options for a source: the architecture, C++17,
// no fast math and no flush-to-zero (NVRTC's defaults: IEEE division and
// square root, denormals kept: the CPU/GPU bit-exactness contract), plus
// extra.
func (c *compiler) options(extra ...string) []string {
	return append([]string{c.arch, "--std=c++17", "-ftz=false", "-prec-div=true", "-prec-sqrt=true"}, extra...)
}

// cacheKey is the hex SHA-256 of the NVRTC version, the options, the
// source and every header (name and text): a change to any file the program
// can include compiles it again.
func (c *compiler) cacheKey(p program, opts []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "nvrtc %s\x00%s\x00%d\x00%s", c.version, strings.Join(opts, "\x00"), len(p.src), p.src)
	for _, f := range p.headers {
		fmt.Fprintf(h, "\x00%s\x00%d\x00%s", f.name, len(f.text), f.text)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// compile returns the cubin of p compiled with opts, from the cache when it
// holds one. A cache that cannot be read or written is skipped silently: it
// only saves time.
func (c *compiler) compile(p program, opts []string) ([]byte, error) {
	key := c.cacheKey(p, opts)
	path := ""
	if c.dir != "" && c.dir != "off" {
		path = filepath.Join(c.dir, key+".cubin")
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b, nil
		}
	}
	c.compiles++
	cubin, _, err := nvrtcCompile(p, opts)
	if err != nil {
		return nil, err
	}
	if path != "" {
		writeAtomic(path, cubin)
	}
	return cubin, nil
}

// writeAtomic writes b to path through a temporary file and a rename, so
// a reader never sees half a cubin. Errors are ignored (the cache is an
// optimisation).
func writeAtomic(path string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".cubin-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), path) != nil {
		os.Remove(f.Name())
	}
}
