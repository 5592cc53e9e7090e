package main

import (
	"strings"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/natsconn"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// config is the environment's configuration of the gearbox binary. Every
// field is documented in the README's configuration table; keep them in
// step.
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
	EmbeddedListen string `env:"GEARBOX_EMBEDDED_LISTEN" envDefault:"127.0.0.1:4222"`
	DataDir        string `env:"GEARBOX_DATA_DIR"`
	Prefix         string `env:"GEARBOX_PREFIX" envDefault:"gearbox"`
	Provision      bool   `env:"GEARBOX_PROVISION" envDefault:"true"`

	Models  string `env:"GEARBOX_MODELS"`
	Device  string `env:"GEARBOX_DEVICE" envDefault:"auto"`
	Workers int    `env:"GEARBOX_WORKERS" envDefault:"1"`
	Name    string `env:"GEARBOX_WORKER_NAME"`

	MaxBatchRows   int           `env:"GEARBOX_MAX_BATCH_ROWS" envDefault:"256"`
	MaxDelay       time.Duration `env:"GEARBOX_MAX_DELAY" envDefault:"5ms"`
	MaxQueuedRows  int           `env:"GEARBOX_MAX_QUEUED_ROWS"`
	MaxQueuedBytes int           `env:"GEARBOX_MAX_QUEUED_BYTES"`
	MaxJobBytes    int           `env:"GEARBOX_MAX_JOB_BYTES" envDefault:"8388608"`
	MaxJobRows     int           `env:"GEARBOX_MAX_JOB_ROWS" envDefault:"65536"`
	Prefetch       int           `env:"GEARBOX_PREFETCH"`
	PrefetchBytes  int           `env:"GEARBOX_PREFETCH_BYTES"`
	ReplyPrefixes  string        `env:"GEARBOX_REPLY_PREFIXES" envDefault:"_INBOX."`

	Replicas      int           `env:"GEARBOX_REPLICAS" envDefault:"1"`
	JobsMaxMsgs   int64         `env:"GEARBOX_JOBS_MAX_MSGS" envDefault:"1000000"`
	JobsMaxBytes  int64         `env:"GEARBOX_JOBS_MAX_BYTES" envDefault:"1073741824"`
	ResultsMaxAge time.Duration `env:"GEARBOX_RESULTS_MAX_AGE" envDefault:"24h"`
	ResultsDedupe time.Duration `env:"GEARBOX_RESULTS_DEDUPE_WINDOW" envDefault:"10m"`
	AckWait       time.Duration `env:"GEARBOX_ACK_WAIT" envDefault:"30s"`
	MaxDeliver    int           `env:"GEARBOX_MAX_DELIVER" envDefault:"5"`
	MaxAckPending int           `env:"GEARBOX_MAX_ACK_PENDING" envDefault:"20000"`

	QualitySample      float64       `env:"GEARBOX_QUALITY_SAMPLE" envDefault:"0.02"`
	QualityInterval    time.Duration `env:"GEARBOX_QUALITY_INTERVAL" envDefault:"30s"`
	QualityRows        int           `env:"GEARBOX_QUALITY_ROWS" envDefault:"16"`
	QualityControl     bool          `env:"GEARBOX_QUALITY_CONTROL" envDefault:"true"`
	QualityMinSamples  int           `env:"GEARBOX_QUALITY_MIN_SAMPLES" envDefault:"20"`
	QualityWindow      int           `env:"GEARBOX_QUALITY_WINDOW" envDefault:"50"`
	QualityMargin      float64       `env:"GEARBOX_QUALITY_MARGIN" envDefault:"0.5"`
	QualityCooldown    time.Duration `env:"GEARBOX_QUALITY_COOLDOWN" envDefault:"30s"`
	QualityMaxPerModel int64         `env:"GEARBOX_QUALITY_MAX_PER_MODEL" envDefault:"10000"`

	MetricsAddr     string        `env:"GEARBOX_METRICS_ADDR" envDefault:":9464"`
	ShutdownTimeout time.Duration `env:"GEARBOX_SHUTDOWN_TIMEOUT" envDefault:"30s"`
	LogLevel        string        `env:"GEARBOX_LOG_LEVEL" envDefault:"info"`
	LogFormat       string        `env:"GEARBOX_LOG_FORMAT" envDefault:"auto"`
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
		Name:           c.Name,
		Subjects:       s,
		Streams:        c.streams(),
		Provision:      c.Provision,
		MaxBatchRows:   c.MaxBatchRows,
		MaxDelay:       c.MaxDelay,
		MaxQueuedRows:  c.MaxQueuedRows,
		MaxQueuedBytes: c.MaxQueuedBytes,
		MaxJobBytes:    c.MaxJobBytes,
		MaxJobRows:     c.MaxJobRows,
		Prefetch:       c.Prefetch,
		PrefetchBytes:  c.PrefetchBytes,
		ReplyPrefixes:  c.replyPrefixes(),
		Quality:        c.quality(),
	}
}
