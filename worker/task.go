package worker

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// task is one job's life inside the worker, from pull to settle.
//
// admission (newTask, then a decoder) sets every field above the line
// before the task reaches the batcher, and nothing changes them after; the
// fields below it are written by the executor's finish stage alone (and
// read by its encoders once the job is done), except touched.
type task struct {
	msg       jetstream.Msg
	enc       gearbox.Encoding
	token     string // the job subject's last token: the model it names, if valid
	seq       uint64 // stream sequence, stable across redeliveries
	delivered uint64 // this delivery's number, from 1
	published time.Time
	arrived   time.Time

	job     *gearbox.Job // nil until decoded; partly filled when it failed to
	replyTo string       // the job's reply_to, once the reply policy allowed it

	model     *model.Model // a version t holds until releaseModel (see Models)
	prec      precision.Format
	policyRev uint64    // the policy revision an auto job's precision came from (0: none)
	in        []float32 // rows × model.InputFeatures
	rows      int
	bytes     int    // memory held while queued: payload and decoded input
	isolated  bool   // batched alone: a worker died while holding it before
	lm        *lmJob // a language-model job: run by an engine, not batches
	admitted  bool   // decoded and checked: it goes to the batcher or an engine

	// decoded, for a job handed to a decoder, is closed once the fields
	// above are set (see admission).
	decoded chan struct{}

	// ---- written while batches run

	out       []float32 // rows × model.OutputFeatures
	rowsDone  int
	batch     string // first batch the job ran in
	batchRows int
	queued    time.Duration
	compute   time.Duration
	err       *gearbox.Error // first failure, if any
	poison    bool           // err says the job kills workers: give up at once
	touched   atomic.Int64   // unix nanoseconds of the last ack or InProgress sent
	released  bool           // model released (releaseModel)
}

// item is the batcher's handle on a task.
type item = batcher.Item[*task]

// partDone counts n more rows of t as computed (or failed) and reports
// whether that completes it.
func (t *task) partDone(n int) bool {
	t.rowsDone += n
	return t.rowsDone == t.rows
}

// fail records t's first error.
func (t *task) fail(e *gearbox.Error) {
	if t.err == nil {
		t.err = e
	}
}

// modelName is the name of the model t runs on ("" before it is known).
func (t *task) modelName() string {
	switch {
	case t.model != nil:
		return t.model.Name
	case t.lm != nil:
		return t.lm.served.m.Name
	}
	return ""
}

// id is the job's id, or "" when it is not known (the job did not decode,
// or its id broke the contract).
func (t *task) id() string {
	if t.job == nil {
		return ""
	}
	return t.job.ID
}

// resultID is the Nats-Msg-Id of t's result: the job id, or for a job whose
// id is not known, its stream sequence (stable across redeliveries).
func (t *task) resultID() string { return msgID(t.id(), t.seq) }

func msgID(id string, seq uint64) string {
	if id != "" {
		return id
	}
	return "gearbox-seq-" + strconv.FormatUint(seq, 10)
}

// modelToken is the token t's result and dead letter are published under:
// the subject's model token, or gearbox.InvalidToken for a subject whose
// last token is not a model name.
func (t *task) modelToken() string {
	if gearbox.ValidToken(t.token) != nil {
		return gearbox.InvalidToken
	}
	return t.token
}
