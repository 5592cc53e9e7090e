package worker

import (
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// task is one job's life inside the worker, from pull to ack.
type task struct {
	msg       jetstream.Msg
	enc       gearbox.Encoding
	subject   string // model token of the job subject
	seq       uint64 // stream sequence
	delivered uint64 // delivery count
	published time.Time
	arrived   time.Time

	job   *gearbox.Job
	model *model.Model
	prec  precision.Format
	// policyRev is the policy revision an auto job's precision came from
	// (0: the manifest's, or an explicit precision).
	policyRev uint64
	in        []float32 // rows × model.InputFeatures
	item      *batcher.Item

	mu        sync.Mutex
	out       []float32 // rows × model.OutputFeatures, filled by batches
	batch     string    // first batch the job ran in
	batchRows int
	queued    time.Duration
	compute   time.Duration
	err       *gearbox.Error // first failure, if any
	touched   time.Time      // last ack or InProgress sent
}

// rows is the job's row count.
func (t *task) rows() int { return t.job.Input.Rows() }

// fail records the task's first error.
func (t *task) fail(e *gearbox.Error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = e
	}
	t.mu.Unlock()
}

// failed reports the recorded error, if any.
func (t *task) failed() *gearbox.Error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// msgID is the Nats-Msg-Id of the task's result: the job id, or for a job
// whose id is unknown, its stream sequence (stable across redeliveries).
func msgID(id string, seq uint64) string {
	if id != "" {
		return id
	}
	return "gearbox-seq-" + strconv.FormatUint(seq, 10)
}

// id is the job's id, or "" when the job did not decode.
func (t *task) id() string {
	if t.job == nil {
		return ""
	}
	return t.job.ID
}
