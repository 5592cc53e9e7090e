package deployments

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// memStorage is a storage.Queryable over series held in memory, one sample
// a minute from time 0. The alert tests evaluate the rules on it with
// Prometheus's own query engine. (Prometheus's test storage is its TSDB,
// which brings Prometheus's configuration package and with it every cloud
// SDK Prometheus supports: a third of this module's build.)
type memStorage []storage.Series

// loadSeries reads series in promqltest's notation, e.g.
// `up{job="gearbox"} 1x30 0x30`: the values at 0, 1, 2, … minutes.
func loadSeries(lines []string) (memStorage, error) {
	var st memStorage
	for _, l := range lines {
		lset, vals, err := queryParser.ParseSeriesDesc(l)
		if err != nil {
			return nil, fmt.Errorf("series %q: %w", l, err)
		}
		var ss []chunks.Sample
		for i, v := range vals {
			if !v.Omitted {
				ss = append(ss, floatSample{t: int64(i) * time.Minute.Milliseconds(), f: v.Value})
			}
		}
		st = append(st, storage.NewListSeries(lset, ss))
	}
	sort.Slice(st, func(i, j int) bool { return labels.Compare(st[i].Labels(), st[j].Labels()) < 0 })
	return st, nil
}

func (m memStorage) Querier(int64, int64) (storage.Querier, error) { return m, nil }

// Select returns the series every matcher matches, sorted by labels.
func (m memStorage) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range m {
		ok := true
		for _, mt := range ms {
			ok = ok && mt.Matches(s.Labels().Get(mt.Name))
		}
		if ok {
			out = append(out, s)
		}
	}
	return &seriesSet{series: out, i: -1}
}

func (memStorage) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memStorage) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memStorage) Close() error { return nil }

// seriesSet iterates over a slice of series.
type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// floatSample is one float sample.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// newEngine returns Prometheus's query engine with the server's defaults
// (5 minutes of lookback).
func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:               1_000_000,
		Timeout:                  time.Minute,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   queryParser,
	})
}
