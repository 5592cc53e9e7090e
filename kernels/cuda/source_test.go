//go:build cgo

package cuda

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// These tests read the embedded CUDA C as NVRTC will receive it and check
// what can be checked without NVRTC, which runs only on a GPU host: every
// #include resolves to an embedded file, headers are guarded, each module's
// extern "C" kernels are exactly the ones Go declares for it, every GBX_
// name is defined, and the brackets balance.

// strip blanks out comments and, with literals, string and character
// literals (newlines are kept, so line numbers hold). It fails on an
// unterminated comment or literal.
func strip(src string, literals bool) (string, error) {
	b := []byte(src)
	out := slices.Clone(b)
	blank := func(from, to int) {
		for k := from; k < to; k++ {
			if out[k] != '\n' {
				out[k] = ' '
			}
		}
	}
	for i := 0; i < len(b); {
		switch {
		case strings.HasPrefix(src[i:], "//"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				j = len(src) - i
			}
			blank(i, i+j)
			i += j
		case strings.HasPrefix(src[i:], "/*"):
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return "", fmt.Errorf("line %d: unterminated /* comment", 1+strings.Count(src[:i], "\n"))
			}
			blank(i, i+2+j+2)
			i += 2 + j + 2
		case b[i] == '"' || b[i] == '\'':
			j := i + 1
			for j < len(b) && b[j] != b[i] {
				if b[j] == '\n' {
					return "", fmt.Errorf("line %d: unterminated literal", 1+strings.Count(src[:i], "\n"))
				}
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if literals {
				blank(i, j+1)
			}
			i = j + 1
		default:
			i++
		}
	}
	return string(out), nil
}

var (
	reInclude = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*include[ \t]*(\S+)`)
	reGuard   = regexp.MustCompile(`^\s*#ifndef[ \t]+(\w+)\s*\n\s*#define[ \t]+(\w+)\s`)
	reKernel  = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^()]*\)\s*)?(\w+)\s*\(([^)]*)\)`)
	reGBXUse  = regexp.MustCompile(`\bGBX_[A-Z0-9_]+\b`)
	reGBXDef  = regexp.MustCompile(`#define[ \t]+(GBX_[A-Z0-9_]+)|\b(GBX_[A-Z0-9_]+)\s*=`)
)

// guard returns the include guard of a header's (comment-free) text: its
// first directives must be #ifndef G, #define G.
func guard(code string) string {
	m := reGuard.FindStringSubmatch(code)
	if m == nil || m[1] != m[2] {
		return ""
	}
	return m[1]
}

// expansion is a program with its #includes expanded as NVRTC expands
// them: each "name" from the headers, a guarded header only once.
type expansion struct {
	text     string   // comment-free
	included []string // every file included, in order
}

// expand expands p's includes.
func expand(p program) (expansion, error) {
	files := map[string]string{}
	for _, h := range p.headers {
		files[h.name] = h.text
	}
	var e expansion
	var b strings.Builder
	guards := map[string]bool{}
	var visit func(name, text string, depth int) error
	visit = func(name, text string, depth int) error {
		if depth > 16 {
			return fmt.Errorf("%s: includes nest deeper than 16 (a cycle?)", name)
		}
		code, err := strip(text, false)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if g := guard(code); g != "" {
			if guards[g] {
				return nil
			}
			guards[g] = true
		} else if slices.Contains(e.included, name) {
			return fmt.Errorf("%s: included twice and has no include guard", name)
		}
		if depth > 0 {
			e.included = append(e.included, name)
		}
		last := 0
		for _, m := range reInclude.FindAllStringSubmatchIndex(code, -1) {
			b.WriteString(code[last:m[0]])
			last = m[1]
			arg := code[m[2]:m[3]]
			inc, ok := strings.CutPrefix(arg, `"`)
			inc, ok2 := strings.CutSuffix(inc, `"`)
			if !ok || !ok2 {
				return fmt.Errorf("%s: #include %s: NVRTC has no toolkit or system headers; include embedded files by \"name\"", name, arg)
			}
			t, ok := files[inc]
			if !ok {
				return fmt.Errorf("%s: #include %q: no such file in src/", name, inc)
			}
			if err := visit(inc, t, depth+1); err != nil {
				return err
			}
		}
		b.WriteString(code[last:])
		b.WriteString("\n")
		return nil
	}
	if err := visit(p.name, p.src, 0); err != nil {
		return e, err
	}
	e.text = b.String()
	return e, nil
}

// cKernel is an extern "C" kernel's parsed signature.
type cKernel struct {
	name   string
	params []argKind
}

// parseKernels returns the extern "C" kernels of comment-free text.
func parseKernels(text string) ([]cKernel, error) {
	var ks []cKernel
	for _, m := range reKernel.FindAllStringSubmatch(text, -1) {
		k := cKernel{name: m[1]}
		if params := strings.TrimSpace(m[2]); params != "" && params != "void" {
			for _, p := range strings.Split(params, ",") {
				kind, err := paramKind(p)
				if err != nil {
					return nil, fmt.Errorf("kernel %s: %w", k.name, err)
				}
				k.params = append(k.params, kind)
			}
		}
		ks = append(ks, k)
	}
	if n := strings.Count(text, `extern "C"`); n != len(ks) {
		return nil, fmt.Errorf(`%d extern "C" declarations, %d parsed as extern "C" __global__ void name(params)`, n, len(ks))
	}
	return ks, nil
}

// paramKind is the argKind of one C parameter declaration.
func paramKind(p string) (argKind, error) {
	if strings.Contains(p, "*") {
		return argPtr, nil
	}
	var words []string
	for _, w := range strings.Fields(p) {
		if w != "const" && w != "__restrict__" {
			words = append(words, w)
		}
	}
	if len(words) < 2 {
		return 0, fmt.Errorf("parameter %q: want a type and a name", strings.TrimSpace(p))
	}
	switch typ := strings.Join(words[:len(words)-1], " "); typ {
	case "int", "unsigned", "unsigned int", "u32":
		return argI32, nil
	case "long long", "long long int":
		return argI64, nil
	case "float":
		return argF32, nil
	case "double":
		return argF64, nil
	default:
		return 0, fmt.Errorf("parameter %q: type %q is not one args packs", strings.TrimSpace(p), typ)
	}
}

// moduleKernels expands m and returns its kernels by name.
func moduleKernels(t *testing.T, m *module) (expansion, map[string]cKernel) {
	t.Helper()
	e, err := expand(m.program())
	if err != nil {
		t.Fatalf("module %s: %v", m.name, err)
	}
	ks, err := parseKernels(e.text)
	if err != nil {
		t.Fatalf("module %s: %v", m.name, err)
	}
	byName := map[string]cKernel{}
	for _, k := range ks {
		if _, dup := byName[k.name]; dup {
			t.Errorf("module %s: kernel %s defined twice", m.name, k.name)
		}
		byName[k.name] = k
	}
	return e, byName
}

// TestModuleKernels checks each module's extern "C" kernels against the
// kernels Go declares for it (defKernel), both ways.
func TestModuleKernels(t *testing.T) {
	for _, m := range modules {
		_, inSource := moduleKernels(t, m)
		var declared []string
		for _, k := range kernelDefs {
			if k.mod != m {
				continue
			}
			declared = append(declared, k.name)
			if _, ok := inSource[k.name]; !ok {
				t.Errorf("module %s: Go declares kernel %s, which no source of %v defines as extern \"C\"", m.name, k.name, m.sources)
			}
		}
		for name := range inSource {
			if !slices.Contains(declared, name) {
				t.Errorf("module %s: extern \"C\" kernel %s is not declared in Go (defKernel, with a typed wrapper in kernels.go)", m.name, name)
			}
		}
		if len(declared) == 0 {
			t.Errorf("module %s declares no kernel", m.name)
		}
	}
}

// TestSourceFiles checks every file of src/: each .cu belongs to one
// module, each header is guarded and included by some module, and the
// brackets and conditionals of each balance.
func TestSourceFiles(t *testing.T) {
	included := map[string]int{}
	for _, m := range modules {
		e, _ := moduleKernels(t, m)
		for _, f := range e.included {
			included[f]++
		}
		for _, s := range m.sources {
			if !strings.HasSuffix(s, ".cu") {
				t.Errorf("module %s: source %s: want a .cu file", m.name, s)
			}
		}
	}
	for _, f := range srcFiles() {
		code, err := strip(f.text, true)
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		switch {
		case strings.HasSuffix(f.name, ".cu"):
			if included[f.name] != 1 {
				t.Errorf("%s is included by %d modules, want 1 (add it to a module's sources)", f.name, included[f.name])
			}
		case strings.HasSuffix(f.name, ".h"), strings.HasSuffix(f.name, ".cuh"):
			if guard(code) == "" {
				t.Errorf("%s: no include guard (#ifndef G / #define G first)", f.name)
			}
			if included[f.name] == 0 {
				t.Errorf("%s is included by no module", f.name)
			}
		default:
			t.Errorf("%s: want .cu, .cuh or .h", f.name)
		}
		if err := balanced(code); err != nil {
			t.Errorf("%s: %v", f.name, err)
		}
	}
}

// balanced checks the brackets of literal-free code and its #if/#endif.
func balanced(code string) error {
	var stack []byte
	line := 1
	pair := map[byte]byte{')': '(', ']': '[', '}': '{'}
	for i := 0; i < len(code); i++ {
		switch c := code[i]; c {
		case '\n':
			line++
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pair[c] {
				return fmt.Errorf("line %d: unbalanced %q", line, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("%d bracket(s) left open: %q", len(stack), stack)
	}
	depth := 0
	for n, l := range strings.Split(code, "\n") {
		d := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if !strings.HasPrefix(strings.TrimSpace(l), "#") || len(d) == 0 {
			continue
		}
		switch d[0] {
		case "if", "ifdef", "ifndef":
			depth++
		case "endif":
			if depth--; depth < 0 {
				return fmt.Errorf("line %d: #endif without #if", n+1)
			}
		}
	}
	if depth != 0 {
		return fmt.Errorf("%d #if without #endif", depth)
	}
	return nil
}

// TestGBXNames checks that every GBX_ name the kernels use is defined in
// what the module includes (abi.h and the sources themselves).
func TestGBXNames(t *testing.T) {
	for _, m := range modules {
		e, _ := moduleKernels(t, m)
		code, err := strip(e.text, true)
		if err != nil {
			t.Fatal(err)
		}
		defined := map[string]bool{}
		for _, d := range reGBXDef.FindAllStringSubmatch(code, -1) {
			defined[d[1]+d[2]] = true
		}
		for _, u := range reGBXUse.FindAllString(code, -1) {
			if !defined[u] {
				t.Errorf("module %s uses %s, which nothing it includes defines", m.name, u)
				defined[u] = true // once
			}
		}
	}
}

// TestExpandFailures checks that the checks above fail on the mistakes
// they exist for.
func TestExpandFailures(t *testing.T) {
	hdr := []srcFile{
		{"guarded.cuh", "#ifndef G_H\n#define G_H\nint g;\n#endif\n"},
		{"bare.cuh", "int b;\n"},
	}
	for _, c := range []struct {
		src, want string
	}{
		{`#include "missing.cuh"`, `no such file`},
		{`#include <cuda_fp16.h>`, `no toolkit`},
		{"#include \"bare.cuh\"\n#include \"bare.cuh\"\n", `no include guard`},
		{"/* open", `unterminated`},
	} {
		_, err := expand(program{name: "p", src: c.src, headers: hdr})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("expand(%q) = %v, want an error containing %q", c.src, err, c.want)
		}
	}
	e, err := expand(program{name: "p", src: "#include \"guarded.cuh\"\n// #include \"missing.cuh\"\n#include \"guarded.cuh\"\n", headers: hdr})
	if err != nil || strings.Count(e.text, "int g;") != 1 {
		t.Errorf("guarded header included twice: %v, text %q; want it once", err, e.text)
	}
	if _, err := parseKernels(`extern "C" __global__ void k(const short s) {}`); err == nil {
		t.Error("a short parameter parsed; want an error (args packs no short)")
	}
	if err := balanced("void f() { (]; }"); err == nil {
		t.Error("balanced accepted (]")
	}
}

// TestKernelsWaitFirst: every kernel's first statement is gbx_pdl(). Every
// launch may be a programmatic dependent launch (Config.NoPDL), which is
// safe only if nothing in the kernel touches memory before
// griddepcontrol.wait, and if no kernel can complete without it. The
// kernels of weightsFirst begin with gbx_pdl_weights_first() instead: they
// load weights, which no kernel of a step writes, before they wait, on
// every path (their own tests run them with PDL on the GPU).
func TestKernelsWaitFirst(t *testing.T) {
	weightsFirst := map[string]bool{"gbx_gemv": true, "gbx_nvfp4_gemm": true, "gbx_nvfp4_gemm_tiled": true}
	for _, m := range modules {
		e, ks := moduleKernels(t, m)
		found := 0
		for _, loc := range reKernel.FindAllStringSubmatchIndex(e.text, -1) {
			name := e.text[loc[2]:loc[3]]
			body := strings.TrimLeft(e.text[loc[1]:], " \t\n")
			first := "gbx_pdl();"
			if weightsFirst[name] {
				first = "gbx_pdl_weights_first();"
			}
			if !strings.HasPrefix(body, "{") || !strings.HasPrefix(strings.TrimLeft(body[1:], " \t\n"), first) {
				t.Errorf("module %s: kernel %s does not begin with %s", m.name, name, first)
			}
			found++
		}
		if found != len(ks) {
			t.Errorf("module %s: checked %d kernels of %d", m.name, found, len(ks))
		}
	}
}
