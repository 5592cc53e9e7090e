package gearbox

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix of a default deployment.
const DefaultPrefix = "gearbox"

// Subjects names the subjects, streams, consumer and buckets of one Gearbox
// deployment. Its zero value is invalid; use NewSubjects.
//
// With the default prefix "gearbox": jobs go to gearbox.jobs.<model> (stream
// GEARBOX_JOBS), results to gearbox.results.<model> (GEARBOX_RESULTS),
// quality reports to gearbox.quality.<model> (GEARBOX_QUALITY), dead letters
// to gearbox.dead.<model> (GEARBOX_DEAD), policy changes to
// gearbox.policy.<model>; workers share the durable consumer gearbox-workers;
// the buckets are gearbox_policy and gearbox_models. Another prefix gives
// another, independent set, so deployments can share one NATS account.
type Subjects struct {
	Prefix string
	upper  string // the prefix as a stream-name part: "GEARBOX"
	lower  string // the prefix as a bucket-name part: "gearbox"
}

// NewSubjects returns the names for prefix, which must be one or more
// subject tokens of letters, digits, '-' and '_' (dots between tokens).
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	for _, tok := range strings.Split(prefix, ".") {
		if err := ValidToken(tok); err != nil {
			return Subjects{}, fmt.Errorf("subject prefix %q: %w", prefix, err)
		}
	}
	flat := strings.NewReplacer(".", "_", "-", "_").Replace(prefix)
	return Subjects{Prefix: prefix, upper: strings.ToUpper(flat), lower: strings.ToLower(flat)}, nil
}

// DefaultSubjects are the names for DefaultPrefix.
var DefaultSubjects, _ = NewSubjects(DefaultPrefix)

// Jobs is the subject a job for model is published to.
func (s Subjects) Jobs(model string) string { return s.Prefix + ".jobs." + model }

// Results is the subject a result for model is published to.
func (s Subjects) Results(model string) string { return s.Prefix + ".results." + model }

// Quality is the subject quality reports for model are published to.
func (s Subjects) Quality(model string) string { return s.Prefix + ".quality." + model }

// Dead is the subject dead letters for model are published to.
func (s Subjects) Dead(model string) string { return s.Prefix + ".dead." + model }

// Policy is the subject policy changes for model are announced on.
func (s Subjects) Policy(model string) string { return s.Prefix + ".policy." + model }

// ModelOf returns the model token of a jobs, results, quality or dead
// subject ("" if subject is not one of them).
func (s Subjects) ModelOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, s.Prefix+".")
	if !ok {
		return ""
	}
	kind, model, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(model, ".") {
		return ""
	}
	switch kind {
	case "jobs", "results", "quality", "dead", "policy":
		return model
	}
	return ""
}

// JobsStream, ResultsStream, QualityStream and DeadStream are stream names.
func (s Subjects) JobsStream() string    { return s.upper + "_JOBS" }
func (s Subjects) ResultsStream() string { return s.upper + "_RESULTS" }
func (s Subjects) QualityStream() string { return s.upper + "_QUALITY" }
func (s Subjects) DeadStream() string    { return s.upper + "_DEAD" }

// Consumer is the durable pull consumer every worker binds to.
func (s Subjects) Consumer() string { return strings.ReplaceAll(s.lower, "_", "-") + "-workers" }

// ModelBucket is the object store bucket that carries models to workers.
func (s Subjects) ModelBucket() string { return s.lower + "_models" }

// AttemptsBucket is the key-value bucket in which workers count how often a
// job they suspect of killing workers started computing (keyed by its
// stream sequence).
func (s Subjects) AttemptsBucket() string { return s.lower + "_attempts" }

// PolicyBucket is the key-value bucket of per-model precision policies.
func (s Subjects) PolicyBucket() string { return s.lower + "_policy" }

// InvalidToken stands in for the model token of a job published to a
// subject whose last token is not a model name (such as a literal "*"): its
// error result and dead letter go to <prefix>.results._invalid and
// <prefix>.dead._invalid. No model may be called that.
const InvalidToken = "_invalid"

// ValidToken reports whether tok can be a model name: 1 to 64 letters,
// digits, '-' or '_' (it becomes a subject token and a file name), and not
// InvalidToken.
func ValidToken(tok string) error {
	if tok == InvalidToken {
		return fmt.Errorf("%q is reserved", tok)
	}
	if tok == "" || len(tok) > 64 {
		return fmt.Errorf("%s must be 1 to 64 characters", echo(tok))
	}
	for _, c := range tok {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%s may hold only letters, digits, '-' and '_'", echo(tok))
		}
	}
	return nil
}
