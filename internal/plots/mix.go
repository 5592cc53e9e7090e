package plots

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Mix is a model's precision mix over time: the jobs served at each
// precision in each slice of a run, drawn as stacked bars.
type Mix struct {
	Title string
	// Precisions name the stacks, most accurate first (drawn at the
	// bottom).
	Precisions []string
	// Slices label the slices on the x axis (their start, "12").
	Slices []string
	// Jobs[i][k] is the jobs served at Precisions[i] in slice k.
	Jobs [][]float64
}

// precisionColors give each precision one colour in every picture.
var precisionColors = map[string]color.Color{
	"fp32": color.RGBA{R: 44, G: 160, B: 44, A: 255}, "tf32": color.RGBA{R: 148, G: 103, B: 189, A: 255},
	"fp16": color.RGBA{R: 140, G: 86, B: 75, A: 255}, "bf16": blue, "fp8": orange, "fp4": red,
}

// WriteMix draws the mixes two to a row, then bs in a last row (at most
// two), into one image at path.
func WriteMix(path string, mixes []Mix, bs ...Bars) error {
	if len(bs) > 2 {
		return fmt.Errorf("plot %s: %d bar charts; at most 2 fit the last row", path, len(bs))
	}
	var rows [][]*plot.Plot
	for i, m := range mixes {
		p, err := mixPlot(m)
		if err != nil {
			return err
		}
		if i%2 == 0 {
			rows = append(rows, make([]*plot.Plot, 2))
		}
		rows[len(rows)-1][i%2] = p
	}
	if len(bs) > 0 {
		row := make([]*plot.Plot, 2)
		for i, b := range bs {
			p, err := barPlot(b)
			if err != nil {
				return err
			}
			row[i] = p
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return fmt.Errorf("plot %s: nothing to draw", path)
	}
	return write(path, 10*vg.Inch, vg.Length(len(rows))*3.5*vg.Inch, rows)
}

// mixPlot draws m's stacks.
func mixPlot(m Mix) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = m.Title
	p.Y.Label.Text = "jobs answered"
	p.X.Label.Text = "slice start (s)"
	var below *plotter.BarChart
	for i, name := range m.Precisions {
		if i >= len(m.Jobs) || len(m.Jobs[i]) != len(m.Slices) {
			return nil, fmt.Errorf("mix %q: no %d slices of jobs for %s", m.Title, len(m.Slices), name)
		}
		bar, err := plotter.NewBarChart(plotter.Values(m.Jobs[i]), vg.Points(14))
		if err != nil {
			return nil, err
		}
		c, ok := precisionColors[name]
		if !ok {
			c = color.Gray{Y: uint8(64 + 40*(i%4))}
		}
		bar.Color, bar.LineStyle.Width = c, 0
		if below != nil {
			bar.StackOn(below)
		}
		below = bar
		p.Add(bar)
		p.Legend.Add(name, bar)
	}
	// Room above the tallest stack for the legend.
	top := 0.0
	for k := range m.Slices {
		sum := 0.0
		for i := range m.Precisions {
			sum += m.Jobs[i][k]
		}
		top = max(top, sum)
	}
	p.Y.Min, p.Y.Max = 0, 1.1*top+float64(len(m.Precisions))*0.08*top
	p.Legend.Top = true
	p.NominalX(m.Slices...)
	p.Add(plotter.NewGrid())
	return p, nil
}
