//go:build cgo

package cuda

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLaunches calls every typed launch method with launches recorded, not
// run (no GPU), and checks each launch's arguments against its kernel's C
// signature in the embedded source, its geometry against CUDA's limits,
// and that every kernel is launched by one of them.
func TestLaunches(t *testing.T) {
	sigs := map[*kernel]cKernel{}
	for _, m := range modules {
		_, ks := moduleKernels(t, m)
		for _, kd := range kernelDefs {
			if kd.mod == m {
				sigs[kd] = ks[kd.name]
			}
		}
	}
	const sms = 132
	var got []launch
	k := &kernelSet{sms: sms, launchFunc: func(_ cuStream, l launch) error { got = append(got, l); return nil }}
	var s cuStream
	calls := []struct {
		name string
		call func() error
	}{
		{"toBF16", func() error { return k.toBF16(s, 1, 2, 1000) }},
		{"toFP16", func() error { return k.toFP16(s, 1, 2, 1000) }},
		{"toTF32", func() error { return k.toTF32(s, 1, 2, 1000) }},
		{"amax", func() error { return k.amax(s, 1, 1000, 2) }},
		{"fp8Quant", func() error { return k.fp8Quant(s, 1, 2, 1000, 3, 1, 4, 5, 7) }},
		{"quantRows", func() error { return k.quantRows(s, 1, 2, fmtE4M3, 3, 9, 64, 0) }},
		{"quantRows (a full step)", func() error { return k.quantRows(s, 1, 2, fmtE4M3, 3, 40, 64, 0) }},
		{"fp8QuantSmall", func() error { return k.fp8QuantSmall(s, 1, 2, 1000, 1, 4, 5, 7) }},
		{"scaleBias", func() error { return k.scaleBias(s, 1, 2, 3, 4, 10, 100, actReLU) }},
		{"act", func() error { return k.act(s, 1, 1, 1000, actGELU) }},
		{"softmax", func() error { return k.softmax(s, 1, 1, 10, 100) }},
		{"layerNorm", func() error { return k.layerNorm(s, 1, 1, 10, 100, 2, 3, 1e-5) }},
		{"rmsNorm", func() error { return k.rmsNorm(s, 1, 1, 10, 100, 2, 1e-6) }},
		{"rand", func() error { return k.rand(s, 1, 1000, 7, 1) }},
		{"spin", func() error { return k.spin(s, 1000) }},
		{"nvfp4Gemm", func() error { return k.nvfp4Gemm(s, 1, 2, 3, 0.5, 0, 4, 5, 65, 100, 250, false) }},
		{"nvfp4Gemm tiled", func() error { return k.nvfp4Gemm(s, 1, 2, 3, 0, 6, 4, 5, 7, 96, 4096, true) }},
		{"nvfp4GemmWide", func() error { return k.nvfp4GemmWide(s, 1, 2, 3, 0, 6, 4, 5, 8, 130, 4096, 14336, 3) }},
		{"nvfp4WideSum", func() error { return k.nvfp4WideSum(s, 8, 0.5, 0, 4, 5, 130, 4096, 3) }},
		{"lmConvert", func() error { return k.lmConvert(s, 1, fmtBF16, 2, fmtF32, 1000) }},
		{"lmFill", func() error { return k.lmFill(s, 1, fmtE4M3, 1000, 7, -1, 1) }},
		{"lmEmbed", func() error { return k.lmEmbed(s, 1, fmtBF16, 2, 3, 7, 64) }},
		{"lmNorm", func() error { return k.lmNorm(s, 1, 2, lmEpi{10, 11, 12}, 3, 4, 5, 6, fmtE4M3, 7, 9, 64, 1e-6, 0) }},
		{"lmNorm (a full step)", func() error { return k.lmNorm(s, 1, 2, lmEpi{}, 3, 0, 5, 6, fmtBF16, 7, 300, 64, 1e-6, 0) }},
		{"lmRope", func() error {
			return k.lmRope(s, 9, ropeArgs{qkv: 1, stride: 128, epi: lmEpi{10, 11, 12}, dim: 16, heads: 4, kvHeads: 2, layers: 2})
		}},
		{"lmRope (a full step)", func() error {
			return k.lmRope(s, 40, ropeArgs{qkv: 1, stride: 1024, dim: 128, heads: 4, kvHeads: 2, layers: 2})
		}},
		{"lmSiLURows", func() error { return k.lmSiLURows(s, 1, lmEpi{10, 11, 12}, 2, 3, fmtE4M3, 4, 5, 9, 160, 0) }},
		{"lmSiLURows split", func() error { return k.lmSiLURows(s, 1, lmEpi{}, 2, 3, fmtBF16, 4, 5, 2, 4096, 0) }},
		{"lmSiLURows split, a full step", func() error { return k.lmSiLURows(s, 1, lmEpi{}, 2, 3, fmtBF16, 4, 5, 64, 4096, 0) }},
		{"lmSiLURows, a row a block", func() error {
			return k.lmSiLURows(s, 16, lmEpi{32, 48, 64}, 2, 3, fmtE4M3, 4, 5, 256, 14336, 0)
		}},
		{"lmQuantCols", func() error { return k.lmQuantCols(s, 1, 2, fmtE4M3, 3, 4, 2, 4096, 0, 4) }},
		{"lmQuantCols (a full step)", func() error { return k.lmQuantCols(s, 1, 2, fmtE4M3, 3, 4, 64, 4096, 0, 2) }},
		{"attnPartial", func() error {
			return k.attnPartial(s, 3, 9, attnArgs{qkv: 1, kvHeads: 8, group: 4, dim: 128, maxSplits: 16, scale: 0.1})
		}},
		{"gemv", func() error { return k.gemv(s, 1, 2, fmtE4M3, 3, 4, 5, 6, 8, 4096, 4096) }},
		{"attnReduce", func() error { return k.attnReduce(s, 3, 9, attnArgs{kvHeads: 8, group: 4, dim: 128, maxSplits: 16}) }},
		{"lmLogprobsPart", func() error { return k.lmLogprobsPart(s, 1, 128256, 2, 9) }},
		{"lmLogprobs", func() error { return k.lmLogprobs(s, 1, 2, 128256, 3, 4, 5, 6, 9) }},
		{"lmSample", func() error { return k.lmSample(s, 1, 256, 0, 9, 5, sampleArgs{row: 2}) }},
	}
	// Every gbx_attn_prefill entry point: each form, cache format and head dim.
	for form, fname := range []string{pfMMA: "mma.sync", pfWG: "warpgroup"} {
		for _, c := range []struct {
			row0, rows int
			a          attnArgs
		}{
			{3, 2048, attnArgs{qkv: 1, cacheFmt: fmtBF16, kvHeads: 8, group: 4, dim: 128, scale: 0.1}},
			{3, 2048, attnArgs{qkv: 1, cacheFmt: fmtE4M3, kvScale: 2, kvHeads: 8, group: 4, dim: 128, scale: 0.1}},
			{3, 20, attnArgs{qkv: 1, cacheFmt: fmtE4M3, kvScale: 2, kvHeads: 8, group: 4, dim: 64, scale: 0.1}},
			{0, 5, attnArgs{qkv: 1, cacheFmt: fmtBF16, kvHeads: 2, group: 3, dim: 64, scale: 0.1}},
		} {
			a := c.a
			a.pfForm = form
			calls = append(calls, struct {
				name string
				call func() error
			}{fmt.Sprintf("attnPrefill (%s, cache format %d, head dim %d)", fname, a.cacheFmt, a.dim), func() error { return k.attnPrefill(s, c.row0, c.rows, a) }})
		}
	}
	launched := map[*kernel]bool{}
	// Every gbx_attn_dec entry point, by the shapes that select it.
	for _, c := range []struct{ dim, group int }{{64, 1}, {64, 3}, {64, 7}, {128, 2}, {128, 4}, {128, 8}} {
		a := attnArgs{qkv: 1, kvHeads: 8, group: c.group, dim: c.dim, maxSplits: 16, scale: 0.1, dec: k.attnKernel(false, fmtBF16, c.dim, c.group), yq: 2, yqFmt: fmtBF16}
		calls = append(calls, struct {
			name string
			call func() error
		}{fmt.Sprintf("attnPartial (dim %d, group %d)", c.dim, c.group), func() error { return k.attnPartial(s, 3, 9, a) }})
	}
	for _, f := range []fmtCode{fmtBF16, fmtE4M3} {
		for _, dim := range []int{64, 128} {
			a := attnArgs{qkv: 1, cacheFmt: f, kvScale: 3, kvHeads: 8, group: 4, dim: dim, maxSplits: 16, scale: 0.1, dec: k.attnKernel(true, f, dim, 4), yq: 2, yqFmt: fmtBF16}
			calls = append(calls, struct {
				name string
				call func() error
			}{fmt.Sprintf("attnPartial (gbx_attn_mma%d, cache format %d)", dim, f), func() error { return k.attnPartial(s, 3, 9, a) }})
			for _, dec := range []*kernel{k.attnRowsKernel(f, dim, 4), k.attnPFKernel(f, dim, 4), k.attnRingKernel(f, dim, 4)} {
				if dec == nil {
					continue // no _ring entry point for a BF16 cache
				}
				av := a
				av.dec = dec
				calls = append(calls, struct {
					name string
					call func() error
				}{fmt.Sprintf("attnPartial (%s)", dec.name), func() error { return k.attnPartial(s, 3, 9, av) }})
			}
		}
	}
	for _, c := range calls {
		got = nil
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(got) != 1 {
			t.Errorf("%s made %d launches, want 1", c.name, len(got))
			continue
		}
		l := got[0]
		launched[l.kernel] = true
		sig, ok := sigs[l.kernel]
		if !ok || sig.name == "" {
			t.Errorf("%s launches %s, which its module's sources do not define", c.name, l.kernel.name)
			continue
		}
		if g, w := string(l.args.kinds), string(sig.params); g != w {
			t.Errorf("%s packs %s's arguments as %q, its C signature is %q (p pointer, i int, l long long, f float, d double)", c.name, sig.name, g, w)
		}
		if g, w := len(l.args.offs), len(l.args.kinds); g != w {
			t.Errorf("%s: %d offsets for %d arguments", c.name, g, w)
		}
		threads := l.block[0] * l.block[1] * l.block[2]
		if threads == 0 || threads > 1024 || threads%32 != 0 && threads != 1 {
			t.Errorf("%s: block %v: want whole warps (or one thread), at most 1024 threads", c.name, l.block)
		}
		if l.grid[0] == 0 || l.grid[1] == 0 || l.grid[2] == 0 {
			t.Errorf("%s: empty grid %v", c.name, l.grid)
		}
		if limit := max(48<<10, l.kernel.smem); int(l.smem) > limit {
			t.Errorf("%s: %d bytes of dynamic shared memory, the kernel allows %d", c.name, l.smem, limit)
		}
	}
	for _, kd := range kernelDefs {
		if !launched[kd] {
			t.Errorf("kernel %s: no typed method in TestLaunches launches it", kd.name)
		}
	}
	// Geometry of the two shapes most kernels use.
	if l := k.gridStride(kAct, 0, newArgs()); l.grid[0] != 1 {
		t.Errorf("gridStride of 0 items: %d blocks, want 1", l.grid[0])
	}
	if l := k.gridStride(kAct, 1<<30, newArgs()); l.grid[0] != 16*sms {
		t.Errorf("gridStride of 2^30 items: %d blocks, want 16 per SM (%d)", l.grid[0], 16*sms)
	}
	if l := k.gridStride(kAct, 257, newArgs()); l.grid[0] != 2 || l.block[0] != 256 {
		t.Errorf("gridStride of 257 items: %d blocks of %d, want 2 of 256", l.grid[0], l.block[0])
	}
	if l := perRow(kSoftmax, 37, newArgs()); l.grid != [3]uint32{37, 1, 1} {
		t.Errorf("perRow of 37 rows: grid %v", l.grid)
	}
}

// TestKernelsLaunchedFromBackend reads the package's Go source: each kernel
// declared with defKernel is used by exactly one method of kernelSet (its
// typed wrapper) and nowhere else, and each wrapper is called by the
// backend (outside tests): every extern "C" kernel is launched somewhere.
func TestKernelsLaunchedFromBackend(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "kernels.go") {
		t.Skip("the package's Go files are not in the working directory (a test binary run elsewhere)")
	}
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	// The kernel variables: var kX = defKernel(...), or
	// defKernel(...).streamed().
	kvars := map[string]bool{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, sp := range g.Specs {
				vs := sp.(*ast.ValueSpec)
				for i, v := range vs.Values {
					if isDefKernel(v) {
						kvars[vs.Names[i].Name] = true
					}
				}
			}
		}
	}
	if len(kvars) != len(kernelDefs) {
		t.Fatalf("found %d var k... = defKernel(...) declarations, kernelDefs has %d: declare each kernel as a package variable", len(kvars), len(kernelDefs))
	}
	wrapperOf := map[string][]string{} // kernel var -> methods using it
	called := map[string]bool{}        // method names called, outside their own body
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			onSet := fd.Recv != nil && len(fd.Recv.List) == 1 && isStar(fd.Recv.List[0].Type, "kernelSet")
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.Ident:
					if kvars[n.Name] {
						if !onSet {
							t.Errorf("%s: %s uses kernel %s: only its typed method of kernelSet may launch it", fset.Position(n.Pos()), fd.Name.Name, n.Name)
						} else if !slices.Contains(wrapperOf[n.Name], fd.Name.Name) {
							wrapperOf[n.Name] = append(wrapperOf[n.Name], fd.Name.Name)
						}
					}
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name != fd.Name.Name {
						called[sel.Sel.Name] = true
					}
				}
				return true
			})
		}
	}
	for kv := range kvars {
		ws := wrapperOf[kv]
		if len(ws) != 1 {
			t.Errorf("kernel %s is used by methods %v, want exactly one typed method", kv, ws)
			continue
		}
		if !called[ws[0]] {
			t.Errorf("kernel %s: its method %s is never called outside tests", kv, ws[0])
		}
	}
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func isStar(e ast.Expr, name string) bool {
	s, ok := e.(*ast.StarExpr)
	return ok && isIdent(s.X, name)
}

// TestCacheKey checks that the cubin cache key covers the NVRTC version,
// the options, the source and every header's name and text.
func TestCacheKey(t *testing.T) {
	c := &compiler{version: "13.0"}
	p := modOps.program()
	opts := []string{"--gpu-architecture=sm_90a", "-fmad=false"}
	base := c.cacheKey(p, opts)
	if c.cacheKey(modOps.program(), slices.Clone(opts)) != base {
		t.Fatal("the same program and options gave two keys")
	}
	edit := func(f func(p *program)) program {
		q := p
		q.headers = slices.Clone(p.headers)
		f(&q)
		return q
	}
	i := slices.IndexFunc(p.headers, func(f srcFile) bool { return f.name == "abi.h" })
	if i < 0 {
		t.Fatal("abi.h is not among the headers")
	}
	for name, q := range map[string]program{
		"a header's text": edit(func(q *program) { q.headers[i].text += "\n" }),
		"a header's name": edit(func(q *program) { q.headers[i].name = "abi2.h" }),
		"one header less": edit(func(q *program) { q.headers = slices.Delete(q.headers, i, i+1) }),
		"the source":      edit(func(q *program) { q.src += "\n" }),
	} {
		if c.cacheKey(q, opts) == base {
			t.Errorf("changing %s keeps the cache key", name)
		}
	}
	if c.cacheKey(p, opts[:1]) == base {
		t.Error("other options keep the cache key")
	}
	if (&compiler{version: "13.1"}).cacheKey(p, opts) == base {
		t.Error("another NVRTC version keeps the cache key")
	}
}

// isDefKernel reports whether e is defKernel(...), or a method called on
// it (defKernel(...).streamed()).
func isDefKernel(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
		return isDefKernel(sel.X)
	}
	return isIdent(c.Fun, "defKernel")
}
