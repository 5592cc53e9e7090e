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
// its batch-size bucket, the model's weights, the fp8 scale vector. An
// event that frees or moves a buffer or the scale vector (a pool
// reallocated or dropped, the vector grown) destroys all graphs
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
}

// graph is a captured forward pass and what it reads and writes.
type graph struct {
	exec cuGraphExec
	buf  *actBuf
	cur  int // the activation buffer holding the output
}

// dropGraphs destroys the graphs of model m, which alone hold its weights'
// addresses, and forgets its passes (the stream must be idle).
func (d *devState) dropGraphs(m *model.Model) {
	for k, g := range d.graphs {
		if k.m == m {
			g.exec.destroy()
			delete(d.graphs, k)
		}
	}
	for k := range d.graphSeen {
		if k.m == m {
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

// replay runs a captured forward pass on in, writing out.
func (d *devState) replay(g *graph, in, out []float32) error {
	copy(g.buf.hin.floats(len(in)), in)
	if err := g.exec.launch(d.stream); err != nil {
		return err
	}
	if err := d.stream.sync(); err != nil {
		return err
	}
	copy(out, g.buf.hout.floats(len(out)))
	return nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
