package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/internal/natsconn"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// config is the environment's configuration of the gearbox binary: one
// field per variable of the README's configuration table, which
// TestREADMEConfigTable holds to it. No field has an envDefault: a
// package's default comes from that package (defaultConfig), so it is
// written once.
type config struct {
	NATSURL        string `env:"GEARBOX_NATS_URL"`
	NATSCreds      string `env:"GEARBOX_NATS_CREDS"`
	NATSUser       string `env:"GEARBOX_NATS_USER"`
	NATSPassword   string `env:"GEARBOX_NATS_PASSWORD"`
	NATSToken      string `env:"GEARBOX_NATS_TOKEN"`
	NATSNKeySeed   string `env:"GEARBOX_NATS_NKEY_SEED"`
	NATSCA         string `env:"GEARBOX_NATS_CA"`
	NATSCert       string `env:"GEARBOX_NATS_CERT"`
	NATSKey        string `env:"GEARBOX_NATS_KEY"`
	EmbeddedListen string `env:"GEARBOX_EMBEDDED_LISTEN"`
	DataDir        string `env:"GEARBOX_DATA_DIR"`
	Prefix         string `env:"GEARBOX_PREFIX"`
	Provision      bool   `env:"GEARBOX_PROVISION"`

	Models  string `env:"GEARBOX_MODELS"`
	Device  string `env:"GEARBOX_DEVICE"`
	Workers int    `env:"GEARBOX_WORKERS"`
	Name    string `env:"GEARBOX_WORKER_NAME"`

	MaxBatchRows   int           `env:"GEARBOX_MAX_BATCH_ROWS"`
	MaxDelay       time.Duration `env:"GEARBOX_MAX_DELAY"`
	MaxQueuedRows  int           `env:"GEARBOX_MAX_QUEUED_ROWS"`
	MaxQueuedBytes int           `env:"GEARBOX_MAX_QUEUED_BYTES"`
	MaxJobBytes    int           `env:"GEARBOX_MAX_JOB_BYTES"`
	MaxJobRows     int           `env:"GEARBOX_MAX_JOB_ROWS"`
	Prefetch       int           `env:"GEARBOX_PREFETCH"`
	PrefetchBytes  int           `env:"GEARBOX_PREFETCH_BYTES"`
	ReplyPrefixes  string        `env:"GEARBOX_REPLY_PREFIXES"`

	KVFraction    float64 `env:"GEARBOX_KV_FRACTION"`
	KVBytes       int64   `env:"GEARBOX_KV_BYTES"`
	LMTokenBudget int     `env:"GEARBOX_LM_TOKEN_BUDGET"`
	LMMaxSeqs     int     `env:"GEARBOX_LM_MAX_SEQS"`
	LMMaxTokens   int     `env:"GEARBOX_LM_MAX_TOKENS"`
	PrefixCache   bool    `env:"GEARBOX_PREFIX_CACHE"`

	Replicas      int           `env:"GEARBOX_REPLICAS"`
	JobsMaxMsgs   int64         `env:"GEARBOX_JOBS_MAX_MSGS"`
	JobsMaxBytes  int64         `env:"GEARBOX_JOBS_MAX_BYTES"`
	ResultsMaxAge time.Duration `env:"GEARBOX_RESULTS_MAX_AGE"`
	ResultsDedupe time.Duration `env:"GEARBOX_RESULTS_DEDUPE_WINDOW"`
	AckWait       time.Duration `env:"GEARBOX_ACK_WAIT"`
	MaxDeliver    int           `env:"GEARBOX_MAX_DELIVER"`
	MaxAckPending int           `env:"GEARBOX_MAX_ACK_PENDING"`

	QualitySample      float64       `env:"GEARBOX_QUALITY_SAMPLE"`
	QualityInterval    time.Duration `env:"GEARBOX_QUALITY_INTERVAL"`
	QualityRows        int           `env:"GEARBOX_QUALITY_ROWS"`
	QualityBudget      float64       `env:"GEARBOX_QUALITY_BUDGET"`
	QualityControl     bool          `env:"GEARBOX_QUALITY_CONTROL"`
	QualityMinSamples  int           `env:"GEARBOX_QUALITY_MIN_SAMPLES"`
	QualityWindow      int           `env:"GEARBOX_QUALITY_WINDOW"`
	QualityMargin      float64       `env:"GEARBOX_QUALITY_MARGIN"`
	QualityCooldown    time.Duration `env:"GEARBOX_QUALITY_COOLDOWN"`
	QualityMaxPerModel int64         `env:"GEARBOX_QUALITY_MAX_PER_MODEL"`

	MetricsAddr     string        `env:"GEARBOX_METRICS_ADDR"`
	ShutdownTimeout time.Duration `env:"GEARBOX_SHUTDOWN_TIMEOUT"`
	LogLevel        string        `env:"GEARBOX_LOG_LEVEL"`
	LogFormat       string        `env:"GEARBOX_LOG_FORMAT"`
}

// defaultConfig is the configuration before the environment is read: the
// packages' defaults (worker, batcher, gearbox streams, quality), and the
// binary's own for what belongs to no package. Defaults that derive from
// other settings (GEARBOX_MAX_QUEUED_ROWS from GEARBOX_MAX_BATCH_ROWS, …)
// stay zero here, so the packages derive them from the values in force.
func defaultConfig() config {
	w, q := worker.DefaultConfig(), quality.DefaultConfig()
	s := w.Streams
	return config{
		EmbeddedListen: "127.0.0.1:4222",
		Prefix:         w.Subjects.Prefix,
		Provision:      true,

		Device:  "auto",
		Workers: 1,

		MaxBatchRows:   w.MaxBatchRows,
		MaxDelay:       w.MaxDelay,
		MaxQueuedBytes: w.MaxQueuedBytes,
		MaxJobBytes:    w.MaxJobBytes,
		MaxJobRows:     w.MaxJobRows,
		ReplyPrefixes:  strings.Join(w.ReplyPrefixes, ","),

		KVFraction:    w.KVFraction,
		KVBytes:       w.KVBytes,
		LMTokenBudget: w.LMTokenBudget,
		LMMaxSeqs:     w.LMMaxSeqs,
		LMMaxTokens:   w.LMMaxTokens,
		PrefixCache:   !w.LMNoPrefixCache,

		Replicas:      s.Replicas,
		JobsMaxMsgs:   s.JobsMaxMsgs,
		JobsMaxBytes:  s.JobsMaxBytes,
		ResultsMaxAge: s.ResultsMaxAge,
		ResultsDedupe: s.ResultsDuplicates,
		AckWait:       s.AckWait,
		MaxDeliver:    s.MaxDeliver,
		MaxAckPending: s.MaxAckPending,

		QualitySample:      q.Sample,
		QualityInterval:    q.Interval,
		QualityRows:        q.Rows,
		QualityBudget:      q.Budget,
		QualityControl:     q.Control,
		QualityMinSamples:  q.Rules.MinSamples,
		QualityWindow:      q.Rules.Window,
		QualityMargin:      q.Rules.Margin,
		QualityCooldown:    q.Rules.Cooldown,
		QualityMaxPerModel: s.QualityMaxPerModel,

		MetricsAddr:     ":9464",
		ShutdownTimeout: 30 * time.Second,
		LogLevel:        "info",
		LogFormat:       "auto",
	}
}

// loadConfig reads the environment (environ: KEY=value entries) over the
// defaults.
func loadConfig(environ []string) (config, error) {
	cfg := defaultConfig()
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: env.ToMap(environ)}); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func (c *config) subjects() (gearbox.Subjects, error) { return gearbox.NewSubjects(c.Prefix) }

// nats is how to reach NATS.
func (c *config) nats() natsconn.Config {
	return natsconn.Config{
		URL: c.NATSURL, Creds: c.NATSCreds, User: c.NATSUser, Password: c.NATSPassword, Token: c.NATSToken,
		NKeySeed: c.NATSNKeySeed, CA: c.NATSCA, Cert: c.NATSCert, Key: c.NATSKey,
	}
}

// replyPrefixes is GEARBOX_REPLY_PREFIXES as a list: comma-separated, or
// "none" for no replies at all.
func (c *config) replyPrefixes() []string {
	if strings.TrimSpace(c.ReplyPrefixes) == "none" {
		return []string{}
	}
	var out []string
	for _, p := range strings.Split(c.ReplyPrefixes, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *config) streams() gearbox.StreamsConfig {
	return gearbox.StreamsConfig{
		Replicas:           c.Replicas,
		JobsMaxMsgs:        c.JobsMaxMsgs,
		JobsMaxBytes:       c.JobsMaxBytes,
		ResultsMaxAge:      c.ResultsMaxAge,
		ResultsDuplicates:  c.ResultsDedupe,
		AckWait:            c.AckWait,
		MaxDeliver:         c.MaxDeliver,
		MaxAckPending:      c.MaxAckPending,
		QualityMaxPerModel: c.QualityMaxPerModel,
	}
}

func (c *config) quality() quality.Config {
	return quality.Config{
		Sample:   c.QualitySample,
		Interval: c.QualityInterval,
		Rows:     c.QualityRows,
		Budget:   c.QualityBudget,
		Control:  c.QualityControl,
		Rules: quality.Rules{
			Window:     c.QualityWindow,
			MinSamples: c.QualityMinSamples,
			Margin:     c.QualityMargin,
			Cooldown:   c.QualityCooldown,
		},
	}
}

func (c *config) worker(s gearbox.Subjects) worker.Config {
	return worker.Config{
		Name:      c.Name,
		Subjects:  s,
		Streams:   c.streams(),
		Provision: c.Provision,
		Config: batcher.Config{
			MaxBatchRows:   c.MaxBatchRows,
			MaxDelay:       c.MaxDelay,
			MaxQueuedRows:  c.MaxQueuedRows,
			MaxQueuedBytes: c.MaxQueuedBytes,
		},
		MaxJobBytes:     c.MaxJobBytes,
		MaxJobRows:      c.MaxJobRows,
		Prefetch:        c.Prefetch,
		PrefetchBytes:   c.PrefetchBytes,
		ReplyPrefixes:   c.replyPrefixes(),
		KVFraction:      c.KVFraction,
		KVBytes:         c.KVBytes,
		LMTokenBudget:   c.LMTokenBudget,
		LMMaxSeqs:       c.LMMaxSeqs,
		LMMaxTokens:     c.LMMaxTokens,
		LMNoPrefixCache: !c.PrefixCache,
		Quality:         c.quality(),
	}
}
