package worker

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/engine"
)

// Metrics are the worker's Prometheus metrics. One Metrics may be shared by
// several workers in a process.
type Metrics struct {
	modelInfo  *prometheus.GaugeVec
	infoMu     sync.Mutex // serialises changes of modelInfo
	infoSeen   sync.Map   // model → the digest modelInfo shows
	received   *prometheus.CounterVec
	completed  *prometheus.CounterVec
	failed     *prometheus.CounterVec
	batchRows  *prometheus.HistogramVec
	queueSec   *prometheus.HistogramVec
	computeSec *prometheus.HistogramVec
	inflight   prometheus.Gauge
	redeliver  prometheus.Counter
	isolated   prometheus.Counter
	retrying   prometheus.Gauge
	lmTokens   *prometheus.CounterVec
	ttft       *prometheus.HistogramVec
	itl        *prometheus.HistogramVec
	engines    *engineCollector
}

// NewMetrics creates the worker metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_jobs_received_total",
			Help: "Valid jobs accepted for batching, by model (rejected jobs count in gearbox_jobs_failed_total).",
		}, []string{"model"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_jobs_completed_total",
			Help: "Jobs answered with an output, by model and the precision run.",
		}, []string{"model", "precision"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_jobs_failed_total",
			Help: "Jobs answered with an error, by model and error code.",
		}, []string{"model", "code"}),
		batchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gearbox_batch_rows",
			Help:    "Rows per computed batch, by model and precision.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}, []string{"model", "precision"}),
		queueSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gearbox_queue_seconds",
			Help:    "Time from a job's publish to the start of its batch's compute, by model.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"model"}),
		computeSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gearbox_compute_seconds",
			Help:    "Forward-pass time per batch, by model and precision.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"model", "precision"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gearbox_inflight_rows",
			Help: "Rows accepted by the worker and not yet answered.",
		}),
		redeliver: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbox_jobs_redelivered_total",
			Help: "Jobs received on a second or later delivery.",
		}),
		isolated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbox_jobs_isolated_total",
			Help: "Batches of one job run alone because a worker died while holding it before.",
		}),
		retrying: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gearbox_answers_retrying",
			Help: "Answers whose publish failed and is being retried (the result or dead-letter stream unavailable).",
		}),
	}
	m.lmTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gearbox_lm_tokens_total",
		Help: "Language-model tokens processed, by model, precision and kind (prompt, generated).",
	}, []string{"model", "precision", "kind"})
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gearbox_lm_ttft_seconds",
		Help:    "Time from a generation's admission to its first token, by model and precision.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"model", "precision"})
	m.itl = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gearbox_lm_inter_token_seconds",
		Help:    "Duration of engine steps that decoded: the time between a running sequence's tokens, by model and precision.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"model", "precision"})
	m.engines = &engineCollector{pools: map[*engines]struct{}{}}
	m.modelInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gearbox_model_info",
		Help: "1 for the version and digest of each model this process last served a job of (join on model to see which version served).",
	}, []string{"model", "version", "digest"})
	reg.MustRegister(m.modelInfo, m.received, m.completed, m.failed, m.batchRows, m.queueSec, m.computeSec, m.inflight, m.redeliver, m.isolated, m.retrying, m.lmTokens, m.ttft, m.itl, m.engines)
	return m
}

// serving shows version and digest as model's in gearbox_model_info,
// replacing the version shown before; m may be nil.
func (m *Metrics) serving(model, version, digest string) {
	if m == nil {
		return
	}
	// Every job passes here: the common case (the version shown
	// already) takes no lock.
	if d, ok := m.infoSeen.Load(model); ok && d == digest {
		return
	}
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	if d, ok := m.infoSeen.Load(model); ok && d == digest {
		return
	}
	m.modelInfo.DeletePartialMatch(prometheus.Labels{"model": model})
	m.modelInfo.WithLabelValues(model, version, digest).Set(1)
	m.infoSeen.Store(model, digest)
}

// Completed is the counter of jobs of model answered at precision p.
func (m *Metrics) Completed(model, p string) prometheus.Counter {
	return m.completed.WithLabelValues(model, p)
}

// Failed is the counter of jobs of model answered with error code.
func (m *Metrics) Failed(model string, code gearbox.Code) prometheus.Counter {
	return m.failed.WithLabelValues(model, string(code))
}

// InflightRows is the gauge of rows accepted and not yet answered.
func (m *Metrics) InflightRows() prometheus.Gauge { return m.inflight }

// AnswersRetrying is the gauge of answers whose publish is being retried.
func (m *Metrics) AnswersRetrying() prometheus.Gauge { return m.retrying }

// engineCollector reports the language-model engines of the workers using
// these metrics, read when scraped.
type engineCollector struct {
	mu    sync.Mutex
	pools map[*engines]struct{}
}

var (
	descSeqs = prometheus.NewDesc("gearbox_lm_sequences", "Sequences in language-model engines, by model, precision and state (running: decoding; waiting: to be prefilled).",
		[]string{"model", "precision", "state"}, nil)
	descBlocks = prometheus.NewDesc("gearbox_lm_kv_blocks", "KV cache blocks of language-model engines, by model, precision and state (used; cached: held by no sequence, kept for a later prompt with their prefix; free).",
		[]string{"model", "precision", "state"}, nil)
	descPreempt = prometheus.NewDesc("gearbox_lm_preemptions_total", "Sequences preempted (to be recomputed) for want of KV blocks, by model and precision.",
		[]string{"model", "precision"}, nil)
)

func (c *engineCollector) add(es *engines) {
	c.mu.Lock()
	c.pools[es] = struct{}{}
	c.mu.Unlock()
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSeqs
	ch <- descBlocks
	ch <- descPreempt
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	pools := make([]*engines, 0, len(c.pools))
	for es := range c.pools {
		pools = append(pools, es)
	}
	c.mu.Unlock()
	type key struct{ model, prec string }
	sums := map[key]*engine.StepStats{}
	for _, es := range pools {
		for k, st := range es.stats() {
			kk := key{k.m.Name, string(k.p)}
			if sums[kk] == nil {
				sums[kk] = &engine.StepStats{}
			}
			s := sums[kk]
			s.Running += st.Running
			s.Waiting += st.Waiting
			s.BlocksUsed += st.BlocksUsed
			s.BlocksCached += st.BlocksCached
			s.BlocksFree += st.BlocksFree
			s.Preemptions += st.Preemptions
		}
	}
	for k, s := range sums {
		ch <- prometheus.MustNewConstMetric(descSeqs, prometheus.GaugeValue, float64(s.Running), k.model, k.prec, "running")
		ch <- prometheus.MustNewConstMetric(descSeqs, prometheus.GaugeValue, float64(s.Waiting), k.model, k.prec, "waiting")
		ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, float64(s.BlocksUsed), k.model, k.prec, "used")
		ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, float64(s.BlocksCached), k.model, k.prec, "cached")
		ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, float64(s.BlocksFree), k.model, k.prec, "free")
		ch <- prometheus.MustNewConstMetric(descPreempt, prometheus.CounterValue, float64(s.Preemptions), k.model, k.prec)
	}
}
