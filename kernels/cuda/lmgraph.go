//go:build cgo

package cuda

import (
	"context"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// CUDA graphs of decode steps. A decode step (every sequence feeds one
// token) of a given shape — model, precision, cache, number of sequences,
// what each wants, the number of attention splits and the block tables'
// capacity — enqueues the same work on the same buffers every time; only
// the packed plan's contents change. Its second eager run is also captured
// into a graph, and later steps of that shape copy their plan into the
// pinned buffer, launch the graph once and read the outputs: one launch
// instead of a dozen kernels and four cuBLASLt calls per layer.
//
// A graph holds the addresses of the step buffers, the weights and the
// cache: growing a buffer, freeing weights (EvictLM) or closing a cache
// drops every graph (lmState.dropGraphs). Prefill steps, whose shapes
// rarely repeat, always run eagerly.

// maxLMGraphs bounds the graphs kept; past it they are all dropped.
const maxLMGraphs = 256

// lmGraphKey is the shape of a decode step.
type lmGraphKey struct {
	m         *lm.Model
	p         precision.Format
	kv        *kvCache
	rows      int
	maxSplits int
	blocksCap int
	wants     string // each sequence's Want, one byte each
}

// lmGraph is a captured decode step: the graph and the run it was
// captured from (its layout, buffers and downloads).
type lmGraph struct {
	exec cuGraphExec
	r    *lmRun
}

// lmGraphKeyOf returns the shape of a step, and whether it is a decode
// step.
func lmGraphKeyOf(m *lm.Model, p precision.Format, kv *kvCache, pl *lmPlan) (lmGraphKey, bool) {
	if pl.rows != len(pl.outs) {
		return lmGraphKey{}, false
	}
	wants := make([]byte, len(pl.outs))
	for i, o := range pl.outs {
		wants[i] = byte(o.want)
	}
	return lmGraphKey{m: m, p: p, kv: kv, rows: pl.rows, maxSplits: pl.maxSplits, blocksCap: pl.blocksCap(), wants: string(wants)}, true
}

// dropGraphs destroys every graph (the stream must be idle: callers sync
// first).
func (s *lmState) dropGraphs() {
	for k, g := range s.graphs {
		g.exec.destroy()
		delete(s.graphs, k)
	}
	clear(s.seen)
}

// lmGraphStep runs a decode step of shape key from its graph, if one is
// captured and graphs are on (a bench may turn them off with graphs
// captured); ok is false when there is none (or its layout differs).
func (d *devState) lmGraphStep(key lmGraphKey, c *lm.Config, pl *lmPlan) (outs []kernels.SeqOut, ok bool, err error) {
	g := d.lm.graphs[key]
	if g == nil || !d.useGraphs {
		return nil, false, nil
	}
	lay := pl.layout()
	if lay != g.r.lay {
		return nil, false, nil
	}
	pl.packInto(d.lm.bufs.hdrHost.h.bytes(), lay)
	if err := g.exec.launch(d.stream); err != nil {
		return nil, true, err
	}
	if err := d.stream.sync(); err != nil {
		return nil, true, err
	}
	d.lm.replays++
	r := *g.r
	r.pl = pl
	return r.outputs(c), true, nil
}

// lmAfterEager counts an eager decode step of shape key and, at the
// second, captures it (a failure only means no graph; the key is not
// tried again).
func (d *devState) lmAfterEager(key lmGraphKey, m *lm.Model, w *lmWeights, kv *kvCache, r *lmRun) {
	if !d.useGraphs || d.lm.seen[key] < 0 {
		return
	}
	if d.lm.seen[key]++; d.lm.seen[key] < 2 {
		return
	}
	if len(d.lm.graphs) >= maxLMGraphs {
		d.lm.dropGraphs()
	}
	if err := d.stream.beginCapture(); err != nil {
		d.lm.seen[key], d.lm.graphErr = -1, err
		return
	}
	err := d.lmEnqueue(context.Background(), m, w, kv, r)
	exec, cerr := d.stream.endCapture()
	if err != nil || cerr != nil {
		exec.destroy()
		d.lm.seen[key], d.lm.graphErr = -1, firstErr(err, cerr)
		return
	}
	d.lm.graphs[key] = &lmGraph{exec: exec, r: r}
}
