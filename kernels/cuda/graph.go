//go:build cgo

package cuda

import (
	"context"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// CUDA graphs: the second Forward of a (model, precision, batch size) is
// captured from the stream into a graph, and later ones replay it with one
// cuGraphLaunch instead of a dozen launches and cuBLASLt calls: at small
// batches the host's launch work, not the GPU, is most of a Forward.
//
// A graph holds device and pinned-host addresses: the activation buffers of
// its slot (slots.go), the model's weights, the fp8 scale vector, so each
// slot has its own graphs. Freeing a slot's buffers (reallocated wider,
// dropped after running out of memory) destroys that slot's graphs
// (dropSlotGraphs); growing the scale vector destroys all
// (invalidateGraphs); freeing a model's weights (Evict) destroys that
// model's (dropGraphs). They are captured again on later calls.

// maxGraphs bounds the graphs kept; past it they are all dropped and
// recaptured as batches come (each costs some device memory).
const maxGraphs = 256

// graphKey names a captured forward pass.
type graphKey struct {
	m    *model.Model
	p    precision.Format
	rows int
	s    *slot
}

// graph is a captured forward pass and what it reads and writes.
type graph struct {
	exec cuGraphExec
	buf  *actBuf
	cur  int // the activation buffer holding the output
}

// dropGraphs destroys the graphs of model m, which alone hold its weights'
// addresses, and forgets its passes.
func (d *devState) dropGraphs(m *model.Model) {
	d.dropGraphsWhere(func(k graphKey) bool { return k.m == m })
}

// dropSlotGraphs destroys the graphs captured on sl's buffers and forgets
// its passes.
func (d *devState) dropSlotGraphs(sl *slot) {
	d.dropGraphsWhere(func(k graphKey) bool { return k.s == sl })
}

// dropGraphsWhere destroys the graphs whose key drop selects and forgets
// those keys' passes (the stream must be done with them).
func (d *devState) dropGraphsWhere(drop func(graphKey) bool) {
	for k, g := range d.graphs {
		if drop(k) {
			g.exec.destroy()
			delete(d.graphs, k)
		}
	}
	for k := range d.graphSeen {
		if drop(k) {
			delete(d.graphSeen, k)
		}
	}
}

// invalidateGraphs destroys every graph (the stream must be idle).
func (d *devState) invalidateGraphs() {
	for k, g := range d.graphs {
		g.exec.destroy()
		delete(d.graphs, k)
	}
	clear(d.graphSeen)
}

// capture records the enqueueing of a forward pass into a graph for key. A
// failure only means no graph: the key is not tried again.
func (d *devState) capture(key graphKey, w *devWeights, buf *actBuf) {
	if len(d.graphs) >= maxGraphs {
		d.invalidateGraphs()
	}
	if err := d.stream.beginCapture(); err != nil {
		d.graphSeen[key] = -1
		d.graphErr = err
		return
	}
	cur, err := d.enqueue(context.Background(), key.m, key.p, w, buf, key.rows)
	exec, cerr := d.stream.endCapture()
	if err != nil || cerr != nil {
		exec.destroy()
		d.graphSeen[key] = -1
		d.graphErr = firstErr(err, cerr)
		return
	}
	d.graphs[key] = &graph{exec: exec, buf: buf, cur: cur}
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
