// Package plots draws the pictures the demo and the benchmarks write
// beside their tables (gonum.org/v1/plot): the precision a model served
// over time against its quality target, and a measure per precision.
// Files are PNG or SVG by their extension.
package plots

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Timeline is a model's precision over time, and the quality errors
// measured along the way.
type Timeline struct {
	Title string
	// Ladder lists the precisions, most accurate first: the y axis of the
	// upper panel.
	Ladder []string
	// Steps are (seconds, precision): the precision served from that time.
	Steps []Step
	// End is the run's last second.
	End float64
	// Errors are measured errors: the served precision's (from quality
	// reports, or the evidence of each change) over time.
	Errors []Point
	// Target is the model's accuracy target (max_error), drawn as a line.
	Target float64
	// Metric names the error ("relative L2", "KL").
	Metric string
}

// Step is the precision served from At seconds on.
type Step struct {
	At        float64
	Precision string
}

// Point is one measured value at a time.
type Point struct {
	At, Value float64
}

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
)

// WriteTimeline draws t as two panels: the precision served (a step line on
// the ladder) and the measured error against the target.
func WriteTimeline(path string, t Timeline) error {
	top := plot.New()
	top.Title.Text = t.Title
	top.Y.Label.Text = "precision served"
	top.Y.Tick.Marker = ladderTicks(t.Ladder)
	top.Y.Min, top.Y.Max = -0.5, float64(len(t.Ladder))-0.5
	rung := func(p string) float64 {
		for i, q := range t.Ladder {
			if q == p {
				return float64(len(t.Ladder) - 1 - i) // most accurate on top
			}
		}
		return -1
	}
	var xy plotter.XYs
	for i, s := range t.Steps {
		end := t.End
		if i+1 < len(t.Steps) {
			end = t.Steps[i+1].At
		}
		y := rung(s.Precision)
		xy = append(xy, plotter.XY{X: s.At, Y: y}, plotter.XY{X: end, Y: y})
	}
	if len(xy) > 0 {
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color, l.Width = blue, vg.Points(2)
		top.Add(l, plotter.NewGrid())
	}

	bottom := plot.New()
	bottom.X.Label.Text = "seconds"
	bottom.Y.Label.Text = t.Metric
	bottom.Y.Scale = plot.LogScale{}
	bottom.Y.Tick.Marker = logTicks{}
	var pts plotter.XYs
	for _, p := range t.Errors {
		if p.Value > 0 {
			pts = append(pts, plotter.XY{X: p.At, Y: p.Value})
		}
	}
	if len(pts) > 0 {
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.Color, s.Radius = orange, vg.Points(1.5)
		bottom.Add(s)
		bottom.Legend.Add("measured", s)
	}
	if t.Target > 0 {
		tl, err := plotter.NewLine(plotter.XYs{{X: 0, Y: t.Target}, {X: t.End, Y: t.Target}})
		if err != nil {
			return err
		}
		tl.Color, tl.Dashes = red, []vg.Length{vg.Points(4), vg.Points(2)}
		bottom.Add(tl)
		bottom.Legend.Add(fmt.Sprintf("target %g", t.Target), tl)
	}
	bottom.Legend.Top, bottom.Legend.Left = true, true
	top.X.Min, top.X.Max, bottom.X.Min, bottom.X.Max = 0, t.End, 0, t.End
	return write(path, 8*vg.Inch, 6*vg.Inch, [][]*plot.Plot{{top}, {bottom}})
}

// Bars is one value per precision.
type Bars struct {
	Title  string
	YLabel string
	Labels []string
	Values []float64
	// Log draws the values on a log scale (errors).
	Log bool
}

// WriteBars draws each of bs as a bar chart, side by side.
func WriteBars(path string, bs ...Bars) error {
	row := make([]*plot.Plot, len(bs))
	for i, b := range bs {
		p, err := barPlot(b)
		if err != nil {
			return err
		}
		row[i] = p
	}
	return write(path, vg.Length(len(bs))*4*vg.Inch, 3.5*vg.Inch, [][]*plot.Plot{row})
}

// barPlot draws b.
func barPlot(b Bars) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = b.Title
	p.Y.Label.Text = b.YLabel
	if b.Log {
		// A bar needs a base a log scale lacks: points on the scale.
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		var xy plotter.XYs
		for j, v := range b.Values {
			if v > 0 {
				xy = append(xy, plotter.XY{X: float64(j), Y: v})
			}
		}
		if len(xy) > 0 {
			sc, err := plotter.NewScatter(xy)
			if err != nil {
				return nil, err
			}
			sc.Color, sc.Radius, sc.Shape = blue, vg.Points(4), draw.CircleGlyph{}
			p.Add(sc)
		}
		p.NominalX(b.Labels...)
	} else {
		bar, err := plotter.NewBarChart(plotter.Values(b.Values), vg.Points(24))
		if err != nil {
			return nil, err
		}
		bar.Color, bar.LineStyle.Width = blue, 0
		p.Add(bar)
		p.NominalX(b.Labels...)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// logTicks are plot.LogTicks with short labels ("0.0001", not
// "9.999999999999999e-05").
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.LogTicks{Prec: -1}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 2, 64)
		}
	}
	return ts
}

// ladderTicks labels the rungs of the ladder, most accurate on top.
func ladderTicks(ladder []string) plot.ConstantTicks {
	var ts plot.ConstantTicks
	for i, p := range ladder {
		ts = append(ts, plot.Tick{Value: float64(len(ladder) - 1 - i), Label: p})
	}
	return ts
}

// write tiles rows of plots into one image at path, PNG or SVG by its
// extension.
func write(path string, w, h vg.Length, rows [][]*plot.Plot) error {
	ext := strings.ToLower(filepath.Ext(path))
	var canvas vg.CanvasWriterTo
	switch ext {
	case ".png":
		canvas = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	case ".svg":
		canvas = vgsvg.New(w, h)
	default:
		return fmt.Errorf("plot %s: want a .png or .svg file", path)
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: len(rows), Cols: len(rows[0]), PadX: vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Points(2), PadBottom: vg.Points(2), PadLeft: vg.Points(2), PadRight: vg.Points(2)}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		for j, p := range rows[i] {
			if p != nil { // an empty tile
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
