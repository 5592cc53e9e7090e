package gearbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/gearbox-inference/gearbox/precision"
)

// Bounds on a job's fields. DecodeJob applies them as it reads, before a
// field is used for anything (a result, a header, a log line), so a hostile
// payload cannot make a worker hold, log or echo more than these.
const (
	// MaxIDLen is the longest job id, in bytes.
	MaxIDLen = 128
	// MaxReplyToLen is the longest reply_to subject, in bytes.
	MaxReplyToLen = 256
	// MaxMetaEntries is the most entries a job's meta may have.
	MaxMetaEntries = 64
	// MaxMetaBytes bounds the sum of a job's meta keys and values, in bytes.
	MaxMetaBytes = 16 << 10
	// maxShapeDims is the most dimensions a shape may list before the
	// decoder stops reading it (a tensor must have exactly 2).
	maxShapeDims = 8
	// maxEchoLen is the most bytes of a bad value an error message quotes.
	maxEchoLen = 64
)

// DecodeJob decodes a job from untrusted bytes in encoding e. It does not
// validate the job as a whole (see Job.Validate), but it bounds every field
// as it reads it (MaxIDLen, MaxReplyToLen, MaxMetaEntries, MaxMetaBytes), and
// its memory use is a small multiple of len(data) whatever the payload
// claims: msgpack nested deeper than MaxDepth, or declaring more elements
// than it holds bytes, is rejected before anything is allocated.
//
// An error is a bad_request *Error naming the field at fault. The job is
// still returned when the payload was a map (or JSON object) at all: it
// holds every field that decoded within its bounds, so the error can be
// answered under the job's id and to its reply_to. Unknown fields are
// skipped, so later additive versions of the contract stay readable.
func DecodeJob(data []byte, e Encoding) (*Job, error) {
	if len(data) == 0 {
		return nil, Errorf(CodeBadRequest, "empty %s payload", e)
	}
	var d jobDecoder
	var err error
	if e == JSON {
		err = d.json(data)
	} else {
		err = d.msgpack(data)
	}
	if err != nil {
		return nil, Errorf(CodeBadRequest, "malformed %s job: %v", e, err)
	}
	d.finishInput()
	if d.err != nil {
		return &d.j, d.err
	}
	return &d.j, nil
}

// jobDecoder collects a job field by field, keeping the first field error
// and going on, so that later fields (the id, reply_to) are still read.
type jobDecoder struct {
	j   Job
	err *Error

	dtype     DType
	shape     []int
	data      []byte
	values    []float32
	hasData   bool
	hasValues bool
	metaBytes int
}

// fail records the first field error.
func (d *jobDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = Errorf(CodeBadRequest, format, args...)
	}
}

// The setters below apply each field's bounds; both encodings call them.

// bounded wraps a string setter with a length bound, checked before the
// value is looked at (msgpack checks the declared length before reading).
func (d *jobDecoder) bounded(field string, max int, set func(string)) func(string) {
	return func(s string) {
		if len(s) > max {
			d.fail("%s is %d bytes; at most %d", field, len(s), max)
			return
		}
		set(s)
	}
}

func (d *jobDecoder) setID(s string) {
	if err := checkID(s); err != nil {
		d.fail("%v", err)
		return
	}
	d.j.ID = s
}

func (d *jobDecoder) setModel(s string) {
	if err := ValidToken(s); err != nil {
		d.fail("model: %v", err)
		return
	}
	d.j.Model = s
}

func (d *jobDecoder) setPrecision(s string) {
	f, err := precision.Parse(s)
	if err != nil {
		d.fail("precision: %v", err)
		return
	}
	d.j.Precision = f
}

func (d *jobDecoder) setOutputDType(s string) {
	if err := checkOutputDType(DType(s)); err != nil {
		d.fail("%v", err)
		return
	}
	d.j.OutputDType = DType(s)
}

func (d *jobDecoder) setReplyTo(s string) {
	if err := checkReplyTo(s); err != nil {
		d.fail("reply_to: %v", err)
		return
	}
	d.j.ReplyTo = s
}

func (d *jobDecoder) setMaxError(f float64) {
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail("max_error %v must be a finite number ≥ 0", f)
		return
	}
	d.j.MaxError = f
}

func (d *jobDecoder) setPriority(v int64) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("priority %d is outside the 32-bit integer range", v)
		return
	}
	d.j.Priority = int(v)
}

func (d *jobDecoder) setDeadline(v int64) {
	if v < 0 {
		d.fail("deadline %d must be unix milliseconds", v)
		return
	}
	d.j.Deadline = v
}

func (d *jobDecoder) setMeta(k, v string) {
	d.metaBytes += len(k) + len(v)
	switch {
	case len(d.j.Meta) >= MaxMetaEntries:
		d.fail("meta has more than %d entries", MaxMetaEntries)
	case d.metaBytes > MaxMetaBytes:
		d.fail("meta holds more than %d bytes of keys and values", MaxMetaBytes)
	case !utf8.ValidString(k) || !utf8.ValidString(v):
		d.fail("meta[%s] is not valid UTF-8", echo(k))
	default:
		if d.j.Meta == nil {
			d.j.Meta = map[string]string{}
		}
		d.j.Meta[k] = v
	}
}

func (d *jobDecoder) setShape(dims []int64) {
	if len(dims) > maxShapeDims {
		d.fail("input.shape has %d dimensions; want [rows, features]", len(dims))
		return
	}
	d.shape = make([]int, len(dims))
	for i, v := range dims {
		if v < 0 || v > math.MaxInt32 {
			d.fail("input.shape[%d] = %d is out of range", i, v)
			d.shape = nil
			return
		}
		d.shape[i] = int(v)
	}
}

func (d *jobDecoder) setDType(s string) {
	if s == "" {
		return // absent, as Go clients write it for jobs without input
	}
	if DType(s).Size() == 0 {
		d.fail("input.dtype %s is not one of f32, f16, bf16", echo(s))
		return
	}
	d.dtype = DType(s)
}

// addValue appends one element of input.values.
func (d *jobDecoder) addValue(v float64) bool {
	if math.IsNaN(v) || math.Abs(v) > math.MaxFloat32 {
		d.fail("input.values[%d] = %g is not a finite float32", len(d.values), v)
		return false
	}
	d.values = append(d.values, float32(v))
	return true
}

// finishInput assembles the input tensor from its fields.
func (d *jobDecoder) finishInput() {
	t := Tensor{DType: d.dtype, Shape: d.shape, Data: d.data}
	if d.hasValues {
		switch {
		case d.hasData:
			d.fail("input has both data and values; give one")
			return
		case t.DType != "" && t.DType != F32:
			d.fail("input.values need dtype f32, not %s", echo(string(t.DType)))
			return
		}
		t.DType = F32
		if t.Shape == nil {
			t.Shape = []int{1, len(d.values)}
		}
		t.Data = make([]byte, 4*len(d.values))
		for i, v := range d.values {
			binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
		}
	}
	d.j.Input = t
}

// checkID reports an id that cannot name a result: empty is allowed here
// (Validate rejects it), too long, not UTF-8, or holding a control
// character (ids travel in the Nats-Msg-Id header).
func checkID(s string) error {
	if len(s) > MaxIDLen {
		return fmt.Errorf("id is %d bytes; at most %d", len(s), MaxIDLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("id is not valid UTF-8")
	}
	for i, c := range s {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("id has a control character at byte %d", i)
		}
	}
	return nil
}

// checkReplyTo checks reply_to's length and syntax (not where it points:
// that is the worker's reply policy).
func checkReplyTo(s string) error {
	if len(s) > MaxReplyToLen {
		return fmt.Errorf("%d bytes; at most %d", len(s), MaxReplyToLen)
	}
	return ValidSubject(s)
}

// echo quotes s for an error message, cut to maxEchoLen bytes.
func echo(s string) string {
	if len(s) <= maxEchoLen {
		return fmt.Sprintf("%q", s)
	}
	cut := maxEchoLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// msgpack decodes a msgpack job. A returned error means the payload is not
// a msgpack map at all; field errors go to d.err.
func (d *jobDecoder) msgpack(data []byte) error {
	if err := scanMsgpack(data, MaxDepth); err != nil {
		return err
	}
	r := &mpReader{b: data}
	h, err := r.head()
	if err != nil {
		return err
	}
	if h.kind != mpMap {
		return fmt.Errorf("a job must be a map; got %s", h.kind)
	}
	for range h.n {
		key, ok, err := r.key()
		if err != nil {
			return err
		}
		v, err := r.head()
		if err != nil {
			return err
		}
		if !ok {
			d.fail("job has a key that is not a string")
			if err := r.skip(v); err != nil {
				return err
			}
			continue
		}
		if err := d.msgpackField(r, key, v); err != nil {
			return err
		}
	}
	return nil
}

func (d *jobDecoder) msgpackField(r *mpReader, key string, v mpHead) error {
	switch key {
	case "id":
		return r.str(v, "id", MaxIDLen, d, d.setID)
	case "model":
		return r.str(v, "model", 64, d, d.setModel)
	case "precision":
		return r.str(v, "precision", 16, d, d.setPrecision)
	case "reply_to":
		return r.str(v, "reply_to", MaxReplyToLen, d, d.setReplyTo)
	case "max_error":
		return r.number(v, "max_error", d, d.setMaxError)
	case "priority":
		return r.integer(v, "priority", d, d.setPriority)
	case "deadline":
		return r.integer(v, "deadline", d, d.setDeadline)
	case "output_dtype":
		return r.str(v, "output_dtype", 16, d, d.setOutputDType)
	case "meta":
		return d.msgpackMeta(r, v)
	case "input":
		return d.msgpackInput(r, v)
	case "task":
		return r.str(v, "task", 16, d, func(s string) { d.j.Task = Task(s) })
	case "prompt":
		return r.str(v, "prompt", len(r.b), d, func(s string) { d.j.Prompt = s })
	case "prompt_tokens":
		return d.msgpackTokens(r, v)
	case "max_tokens":
		return r.integer(v, "max_tokens", d, func(n int64) { d.j.MaxTokens = d.smallInt("max_tokens", n) })
	case "temperature":
		return r.number(v, "temperature", d, func(f float64) { d.j.Temperature = &f })
	case "top_p":
		return r.number(v, "top_p", d, func(f float64) { d.j.TopP = &f })
	case "top_k":
		return r.integer(v, "top_k", d, func(n int64) { d.j.TopK = d.smallInt("top_k", n) })
	case "seed":
		return d.msgpackSeed(r, v)
	case "logprobs":
		return r.integer(v, "logprobs", d, func(n int64) {
			if p := d.smallInt("logprobs", n); p != nil {
				d.j.Logprobs = *p
			}
		})
	case "stream":
		if v.kind != mpBool && v.kind != mpNil {
			d.fail("stream: want a boolean, got %s", v.kind)
			return r.skip(v)
		}
		d.j.Stream = v.b
		return nil
	case "stop":
		return d.msgpackStop(r, v)
	}
	return r.skip(v)
}

// smallInt is n as an int when it fits 32 bits; otherwise it records an
// error and returns nil.
func (d *jobDecoder) smallInt(field string, n int64) *int {
	if n < math.MinInt32 || n > math.MaxInt32 {
		d.fail("%s %d is outside the 32-bit integer range", field, n)
		return nil
	}
	v := int(n)
	return &v
}

func (d *jobDecoder) setTokens(ids []int64) {
	d.j.PromptTokens = make([]int32, len(ids))
	for i, id := range ids {
		if id < 0 || id > math.MaxInt32 {
			d.fail("prompt_tokens[%d] = %d is not a token id", i, id)
			d.j.PromptTokens = nil
			return
		}
		d.j.PromptTokens[i] = int32(id)
	}
}

func (d *jobDecoder) setStop(ss []string) {
	if len(ss) > MaxStop {
		d.fail("stop has %d strings; at most %d", len(ss), MaxStop)
		return
	}
	for i, s := range ss {
		if len(s) > MaxStopLen {
			d.fail("stop[%d] is %d bytes; at most %d", i, len(s), MaxStopLen)
			return
		}
	}
	d.j.Stop = ss
}

func (d *jobDecoder) msgpackTokens(r *mpReader, v mpHead) error {
	if v.kind == mpNil {
		return nil
	}
	if v.kind != mpArray {
		d.fail("prompt_tokens: want an array of token ids, got %s", v.kind)
		return r.skip(v)
	}
	ids := make([]int64, 0, v.n) // n ≤ the bytes left: bounded
	good := true
	for i := range v.n {
		h, err := r.head()
		if err != nil {
			return err
		}
		n, ok := asInt(h)
		if !ok {
			if good {
				d.fail("prompt_tokens[%d]: want an integer, got %s", i, h.kind)
			}
			good = false
			if err := r.skip(h); err != nil {
				return err
			}
			continue
		}
		ids = append(ids, n)
	}
	if good {
		d.setTokens(ids)
	}
	return nil
}

func (d *jobDecoder) msgpackSeed(r *mpReader, v mpHead) error {
	switch {
	case v.kind == mpNil:
	case v.kind == mpUint:
		d.j.Seed = &v.u
	case v.kind == mpInt && v.i >= 0:
		u := uint64(v.i)
		d.j.Seed = &u
	default:
		d.fail("seed: want an integer from 0 to 2^64-1, got %s", v.kind)
		return r.skip(v)
	}
	return nil
}

func (d *jobDecoder) msgpackStop(r *mpReader, v mpHead) error {
	if v.kind == mpNil {
		return nil
	}
	if v.kind != mpArray || v.n > MaxStop {
		if v.kind == mpArray {
			d.fail("stop has %d strings; at most %d", v.n, MaxStop)
		} else {
			d.fail("stop: want an array of strings, got %s", v.kind)
		}
		return r.skip(v)
	}
	var ss []string
	for i := range v.n {
		h, err := r.head()
		if err != nil {
			return err
		}
		if h.kind != mpStr || h.n > MaxStopLen {
			d.fail("stop[%d]: want a string of at most %d bytes", i, MaxStopLen)
			if err := r.skip(h); err != nil {
				return err
			}
			continue
		}
		b, err := r.bytes(h.n)
		if err != nil {
			return err
		}
		ss = append(ss, string(b))
	}
	if len(ss) == v.n {
		d.setStop(ss)
	}
	return nil
}

func (d *jobDecoder) msgpackMeta(r *mpReader, v mpHead) error {
	if v.kind == mpNil {
		return nil
	}
	if v.kind != mpMap {
		d.fail("meta: want a map of strings, got %s", v.kind)
		return r.skip(v)
	}
	for range v.n {
		k, ok, err := r.key()
		if err != nil {
			return err
		}
		vh, err := r.head()
		if err != nil {
			return err
		}
		if !ok || vh.kind != mpStr {
			if ok {
				d.fail("meta[%s]: want a string, got %s", echo(k), vh.kind)
			} else {
				d.fail("meta has a key that is not a string")
			}
			if err := r.skip(vh); err != nil {
				return err
			}
			continue
		}
		b, err := r.bytes(vh.n)
		if err != nil {
			return err
		}
		d.setMeta(k, string(b))
	}
	return nil
}

func (d *jobDecoder) msgpackInput(r *mpReader, v mpHead) error {
	if v.kind == mpNil {
		return nil
	}
	if v.kind != mpMap {
		d.fail("input: want a map, got %s", v.kind)
		return r.skip(v)
	}
	for range v.n {
		k, ok, err := r.key()
		if err != nil {
			return err
		}
		vh, err := r.head()
		if err != nil {
			return err
		}
		if err := d.msgpackInputField(r, k, ok, vh); err != nil {
			return err
		}
	}
	return nil
}

func (d *jobDecoder) msgpackInputField(r *mpReader, k string, ok bool, vh mpHead) error {
	switch {
	case !ok:
		d.fail("input has a key that is not a string")
	case k == "dtype":
		return r.str(vh, "input.dtype", 16, d, d.setDType)
	case k == "shape":
		return d.msgpackShape(r, vh)
	case k == "values":
		return d.msgpackValues(r, vh)
	case k == "data" && vh.kind == mpNil:
		return nil
	case k == "data" && vh.kind != mpBin:
		d.fail("input.data: want msgpack bin (the raw little-endian bytes), got %s; send an array of numbers as input.values", vh.kind)
	case k == "data":
		b, err := r.bytes(vh.n)
		if err != nil {
			return err
		}
		d.data, d.hasData = bytes.Clone(b), true
		return nil
	}
	return r.skip(vh)
}

func (d *jobDecoder) msgpackShape(r *mpReader, v mpHead) error {
	if v.kind == mpNil {
		return nil
	}
	if v.kind != mpArray || v.n > maxShapeDims {
		if v.kind == mpArray {
			d.fail("input.shape has %d dimensions; want [rows, features]", v.n)
		} else {
			d.fail("input.shape: want an array of integers, got %s", v.kind)
		}
		return r.skip(v)
	}
	dims := make([]int64, 0, v.n)
	for i := range v.n {
		h, err := r.head()
		if err != nil {
			return err
		}
		n, ok := asInt(h)
		if !ok {
			d.fail("input.shape[%d]: want an integer, got %s", i, h.kind)
			if err := r.skip(h); err != nil {
				return err
			}
			continue
		}
		dims = append(dims, n)
	}
	if len(dims) == v.n {
		d.setShape(dims)
	}
	return nil
}

func (d *jobDecoder) msgpackValues(r *mpReader, v mpHead) error {
	if v.kind == mpNil {
		return nil
	}
	if v.kind != mpArray {
		d.fail("input.values: want an array of numbers, got %s", v.kind)
		return r.skip(v)
	}
	d.hasValues = true
	d.values = make([]float32, 0, v.n) // n ≤ the bytes left: bounded
	good := true
	for i := range v.n {
		h, err := r.head()
		if err != nil {
			return err
		}
		f, ok := asFloat(h)
		if !ok {
			if good {
				d.fail("input.values[%d]: want a number, got %s", i, h.kind)
			}
			good = false
			if err := r.skip(h); err != nil {
				return err
			}
			continue
		}
		if good {
			good = d.addValue(f)
		}
	}
	return nil
}

// key reads a map key; ok is false (and the key skipped) when it is not a
// string.
func (r *mpReader) key() (string, bool, error) {
	h, err := r.head()
	if err != nil {
		return "", false, err
	}
	if h.kind != mpStr {
		return "", false, r.skip(h)
	}
	b, err := r.bytes(h.n)
	return string(b), true, err
}

// str reads a string field of at most max bytes and hands it to set; nil is
// an absent field. A value of another kind or length is recorded in d and
// skipped.
func (r *mpReader) str(h mpHead, field string, max int, d *jobDecoder, set func(string)) error {
	switch {
	case h.kind == mpNil:
		return nil
	case h.kind != mpStr:
		d.fail("%s: want a string, got %s", field, h.kind)
	case h.n > max:
		d.fail("%s is %d bytes; at most %d", field, h.n, max)
	default:
		b, err := r.bytes(h.n)
		if err == nil {
			set(string(b))
		}
		return err
	}
	return r.skip(h)
}

func (r *mpReader) number(h mpHead, field string, d *jobDecoder, set func(float64)) error {
	if h.kind == mpNil {
		return nil
	}
	f, ok := asFloat(h)
	if !ok {
		d.fail("%s: want a number, got %s", field, h.kind)
		return r.skip(h)
	}
	set(f)
	return nil
}

func (r *mpReader) integer(h mpHead, field string, d *jobDecoder, set func(int64)) error {
	if h.kind == mpNil {
		return nil
	}
	n, ok := asInt(h)
	if !ok {
		d.fail("%s: want an integer, got %s", field, h.kind)
		return r.skip(h)
	}
	set(n)
	return nil
}

// asFloat is a numeric value as float64.
func asFloat(h mpHead) (float64, bool) {
	switch h.kind {
	case mpInt:
		return float64(h.i), true
	case mpUint:
		return float64(h.u), true
	case mpFloat:
		return h.f, true
	}
	return 0, false
}

// asInt is an integral value (an integer, or a float with no fraction, as
// some encoders write them) as int64.
func asInt(h mpHead) (int64, bool) {
	switch h.kind {
	case mpInt:
		return h.i, true
	case mpUint:
		return int64(h.u), h.u <= math.MaxInt64
	case mpFloat:
		if h.f == math.Trunc(h.f) && math.Abs(h.f) < 1<<63 {
			return int64(h.f), true
		}
	}
	return 0, false
}

// json decodes a JSON job. A returned error means the payload is not a
// JSON object at all (or not JSON); field errors go to d.err.
func (d *jobDecoder) json(data []byte) error {
	if !utf8.Valid(data) {
		// encoding/json would quietly replace the bad bytes.
		return errors.New("the payload is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := jsonObject(dec, "a job", func(key string) error {
		return d.jsonField(dec, key)
	}); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// jsonObject reads one JSON object from dec, calling field for each key with
// dec positioned at its value (which field must consume).
func jsonObject(dec *json.Decoder, what string, field func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("%s must be a JSON object; got %s", what, jsonKind(tok))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if err := field(tok.(string)); err != nil {
			return err
		}
	}
	_, err = dec.Token() // '}'
	return err
}

func (d *jobDecoder) jsonField(dec *json.Decoder, key string) error {
	switch key {
	case "id":
		return jsonValue(dec, d, "id", d.bounded("id", MaxIDLen, d.setID))
	case "model":
		return jsonValue(dec, d, "model", d.bounded("model", 64, d.setModel))
	case "precision":
		return jsonValue(dec, d, "precision", d.bounded("precision", 16, d.setPrecision))
	case "reply_to":
		return jsonValue(dec, d, "reply_to", d.bounded("reply_to", MaxReplyToLen, d.setReplyTo))
	case "max_error":
		return jsonValue(dec, d, "max_error", d.setMaxError)
	case "priority":
		return jsonValue(dec, d, "priority", d.setPriority)
	case "deadline":
		return jsonValue(dec, d, "deadline", d.setDeadline)
	case "output_dtype":
		return jsonValue(dec, d, "output_dtype", d.bounded("output_dtype", 16, d.setOutputDType))
	case "meta":
		return d.jsonMeta(dec)
	case "input":
		return d.jsonInput(dec)
	case "task":
		return jsonValue(dec, d, "task", d.bounded("task", 16, func(s string) { d.j.Task = Task(s) }))
	case "prompt":
		return jsonValue(dec, d, "prompt", func(s string) { d.j.Prompt = s })
	case "prompt_tokens":
		return jsonValue(dec, d, "prompt_tokens", d.setTokens)
	case "max_tokens":
		return jsonValue(dec, d, "max_tokens", func(n int64) { d.j.MaxTokens = d.smallInt("max_tokens", n) })
	case "temperature":
		return jsonValue(dec, d, "temperature", func(f float64) { d.j.Temperature = &f })
	case "top_p":
		return jsonValue(dec, d, "top_p", func(f float64) { d.j.TopP = &f })
	case "top_k":
		return jsonValue(dec, d, "top_k", func(n int64) { d.j.TopK = d.smallInt("top_k", n) })
	case "seed":
		return jsonValue(dec, d, "seed", func(u uint64) { d.j.Seed = &u })
	case "logprobs":
		return jsonValue(dec, d, "logprobs", func(n int64) {
			if p := d.smallInt("logprobs", n); p != nil {
				d.j.Logprobs = *p
			}
		})
	case "stream":
		return jsonValue(dec, d, "stream", func(b bool) { d.j.Stream = b })
	case "stop":
		return jsonValue(dec, d, "stop", d.setStop)
	}
	var skip json.RawMessage
	return dec.Decode(&skip)
}

// jsonValue decodes the next value into a T and hands it to set; null is an
// absent field. A value of the wrong type is recorded in d (the decoder has
// consumed it); a syntax error is returned.
func jsonValue[T any](dec *json.Decoder, d *jobDecoder, field string, set func(T)) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if string(raw) == "null" {
		return nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		d.fail("%s: %s", field, jsonTypeError(err))
		return nil
	}
	set(v)
	return nil
}

// jsonTypeError says what a json.Unmarshal type error is about, briefly.
func jsonTypeError(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("want %s, got %s", jsonTypeName(ute.Type.Kind().String()), ute.Value)
	}
	return err.Error()
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "uint64":
		return "an integer from 0 to 2^64-1"
	case "int", "int64", "int32":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "slice":
		return "an array"
	case "map":
		return "an object"
	}
	return kind
}

func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		if tok == json.Delim('[') {
			return "an array"
		}
		return "a delimiter"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

func (d *jobDecoder) jsonMeta(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if string(raw) == "null" {
		return nil
	}
	inner := json.NewDecoder(bytes.NewReader(raw))
	err := jsonObject(inner, "meta", func(k string) error {
		var v json.RawMessage
		if err := inner.Decode(&v); err != nil {
			return err
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			d.fail("meta[%s]: want a string, got %s", echo(k), jsonKind(firstToken(v)))
			return nil
		}
		d.setMeta(k, s)
		return nil
	})
	if err != nil {
		d.fail("meta: want an object of strings (%v)", err)
	}
	return nil
}

func firstToken(raw []byte) json.Token {
	tok, _ := json.NewDecoder(bytes.NewReader(raw)).Token()
	return tok
}

func (d *jobDecoder) jsonInput(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if string(raw) == "null" {
		return nil
	}
	inner := json.NewDecoder(bytes.NewReader(raw))
	inner.UseNumber()
	err := jsonObject(inner, "input", func(k string) error {
		switch k {
		case "dtype":
			return jsonValue(inner, d, "input.dtype", d.bounded("input.dtype", 16, d.setDType))
		case "shape":
			return jsonValue(inner, d, "input.shape", d.setShape)
		case "data":
			return jsonValue(inner, d, "input.data", func(b []byte) { d.data, d.hasData = b, true })
		case "values":
			return jsonValue(inner, d, "input.values", func(vs []float64) {
				d.hasValues = true
				d.values = make([]float32, 0, len(vs))
				for _, v := range vs {
					if !d.addValue(v) {
						return
					}
				}
			})
		}
		var skip json.RawMessage
		return inner.Decode(&skip)
	})
	if err != nil {
		d.fail("input: %v", err)
	}
	return nil
}
