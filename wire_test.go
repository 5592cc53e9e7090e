package gearbox_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

func sampleJob() *gearbox.Job {
	return &gearbox.Job{
		ID:        "job-1",
		Model:     "mlp",
		Input:     gearbox.NewTensor(2, 3, []float32{1, -2, 3.5, 0, 1e-3, -7}),
		Precision: precision.BF16,
		MaxError:  0.01,
		Priority:  3,
		Deadline:  1_800_000_000_000,
		ReplyTo:   "_INBOX.abc",
		Meta:      map[string]string{"tenant": "a"},
	}
}

func TestJobRoundTrip(t *testing.T) {
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			want := sampleJob()
			data, err := enc.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := gearbox.DecodeJob(data, enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v; want %+v", got, want)
			}
		})
	}
}

// TestWireNames pins the field names of wire contract v1 (docs/wire.md).
func TestWireNames(t *testing.T) {
	j := sampleJob()
	b, _ := json.Marshal(j)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "model", "input", "precision", "max_error", "priority", "deadline", "reply_to", "meta"} {
		if _, ok := m[k]; !ok {
			t.Errorf("job JSON lacks %q: %s", k, b)
		}
	}
	out := gearbox.NewTensor(1, 2, []float32{0.5, 1})
	r := gearbox.Result{ID: "x", Model: "m", Output: &out, Precision: precision.FP32, Worker: "w", Batch: "w-1",
		BatchRows: 4, QueuedMs: 1.5, ComputeMs: 0.25, Error: &gearbox.Error{Code: gearbox.CodeExpired, Message: "late"}, Meta: map[string]string{"k": "v"}}
	b, _ = json.Marshal(r)
	m = nil
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "model", "output", "precision", "worker", "batch", "batch_rows", "queued_ms", "compute_ms", "error", "meta"} {
		if _, ok := m[k]; !ok {
			t.Errorf("result JSON lacks %q: %s", k, b)
		}
	}
	if got := m["error"].(map[string]any)["code"]; got != "expired" {
		t.Errorf("error code = %v; want expired", got)
	}
	if got := m["output"].(map[string]any)["values"]; !reflect.DeepEqual(got, []any{0.5, 1.0}) {
		t.Errorf("JSON output values = %v; want [0.5 1]", got)
	}
}

func TestResultRoundTrip(t *testing.T) {
	out := gearbox.NewTensor(2, 2, []float32{1, 2, 3, float32(math.Inf(1))})
	want := &gearbox.Result{ID: "a", Model: "m", Output: &out, Precision: precision.FP8, Worker: "w", Batch: "w-7", BatchRows: 9, QueuedMs: 2, ComputeMs: 1}
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		data, err := enc.Marshal(want)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		got, err := gearbox.DecodeResult(data, enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v; want %+v", enc, got, want)
		}
	}
}

func TestJSONValues(t *testing.T) {
	cases := []struct {
		name, in string
		rows     int
		want     []float32
		wantErr  string
	}{
		{"values with shape", `{"shape":[2,2],"values":[1,2,3,4]}`, 2, []float32{1, 2, 3, 4}, ""},
		{"values without shape", `{"values":[0.5,-1]}`, 1, []float32{0.5, -1}, ""},
		{"data base64", `{"dtype":"f32","shape":[1,1],"data":"AACAPw=="}`, 1, []float32{1}, ""},
		{"both", `{"shape":[1,1],"data":"AACAPw==","values":[1]}`, 0, nil, "both data and values"},
		{"values f16", `{"dtype":"f16","values":[1]}`, 0, nil, "need dtype f32"},
		{"out of range", `{"values":[1e300]}`, 0, nil, "out of float32 range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tn gearbox.Tensor
			err := json.Unmarshal([]byte(c.in), &tn)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v; want it to mention %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := tn.Values()
			if err != nil {
				t.Fatal(err)
			}
			if tn.Rows() != c.rows || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got rows %d %v; want %d %v", tn.Rows(), got, c.rows, c.want)
			}
		})
	}
}

func TestTensorDTypes(t *testing.T) {
	// 1.5 and -2 are exact in f16 and bf16.
	f16 := gearbox.Tensor{DType: gearbox.F16, Shape: []int{1, 2}, Data: []byte{0x00, 0x3e, 0x00, 0xc0}}
	bf16 := gearbox.Tensor{DType: gearbox.BF16, Shape: []int{1, 2}, Data: []byte{0xc0, 0x3f, 0x00, 0xc0}}
	for _, tn := range []gearbox.Tensor{f16, bf16} {
		got, err := tn.Values()
		if err != nil {
			t.Fatal(err)
		}
		if want := []float32{1.5, -2}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v; want %v", tn.DType, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	nan := gearbox.NewTensor(1, 2, []float32{1, float32(math.NaN())})
	cases := []struct {
		name string
		edit func(j *gearbox.Job)
		want string // substring of the message; "" = valid
	}{
		{"valid", func(j *gearbox.Job) {}, ""},
		{"auto precision", func(j *gearbox.Job) { j.Precision = "" }, ""},
		{"missing id", func(j *gearbox.Job) { j.ID = "" }, "no id"},
		{"long id", func(j *gearbox.Job) { j.ID = strings.Repeat("x", 129) }, "at most 128"},
		{"no model", func(j *gearbox.Job) { j.Model = "" }, "names no model"},
		{"bad model token", func(j *gearbox.Job) { j.Model = "a.b" }, "only letters"},
		{"bad precision", func(j *gearbox.Job) { j.Precision = "int8" }, "unknown precision"},
		{"negative max_error", func(j *gearbox.Job) { j.MaxError = -1 }, "max_error"},
		{"bad reply_to", func(j *gearbox.Job) { j.ReplyTo = "a.*" }, "reply_to"},
		{"bad dtype", func(j *gearbox.Job) { j.Input.DType = "f64" }, "dtype"},
		{"1-d shape", func(j *gearbox.Job) { j.Input.Shape = []int{6} }, "[rows, features]"},
		{"short data", func(j *gearbox.Job) { j.Input.Data = j.Input.Data[:4] }, "needs 24"},
		{"zero rows", func(j *gearbox.Job) { j.Input.Shape = []int{0, 3} }, "positive"},
		{"bf16 output", func(j *gearbox.Job) { j.OutputDType = gearbox.BF16 }, ""},
		{"bad output_dtype", func(j *gearbox.Job) { j.OutputDType = "f8" }, `output_dtype "f8" is not one of f32, bf16, f16`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := sampleJob()
			c.edit(j)
			err := j.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			var e *gearbox.Error
			if !errors.As(err, &e) || e.Code != gearbox.CodeBadRequest || !strings.Contains(e.Message, c.want) {
				t.Fatalf("Validate() = %v; want bad_request mentioning %q", err, c.want)
			}
		})
	}
	if _, err := nan.Values(); err == nil || !strings.Contains(err.Error(), "row 0, feature 1") {
		t.Errorf("NaN input: err = %v; want it to name row 0, feature 1", err)
	}
}

func TestEncodingOf(t *testing.T) {
	cases := map[string]gearbox.Encoding{
		"":                                gearbox.Msgpack,
		"application/json":                gearbox.JSON,
		"Application/JSON; charset=utf-8": gearbox.JSON,
		"application/msgpack":             gearbox.Msgpack,
	}
	for ct, want := range cases {
		h := nats.Header{}
		if ct != "" {
			h.Set(gearbox.HeaderContentType, ct)
		}
		if got := gearbox.EncodingOf(h); got != want {
			t.Errorf("EncodingOf(%q) = %v; want %v", ct, got, want)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := gearbox.DefaultSubjects
	got := []string{s.Jobs("m"), s.Results("m"), s.Quality("m"), s.Dead("m"), s.Policy("m"),
		s.JobsStream(), s.ResultsStream(), s.QualityStream(), s.DeadStream(), s.Consumer(), s.ModelBucket(), s.PolicyBucket()}
	want := []string{"gearbox.jobs.m", "gearbox.results.m", "gearbox.quality.m", "gearbox.dead.m", "gearbox.policy.m",
		"GEARBOX_JOBS", "GEARBOX_RESULTS", "GEARBOX_QUALITY", "GEARBOX_DEAD", "gearbox-workers", "gearbox_models", "gearbox_policy"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
	o, err := gearbox.NewSubjects("acme.prod")
	if err != nil {
		t.Fatal(err)
	}
	if o.Jobs("m") != "acme.prod.jobs.m" || o.JobsStream() != "ACME_PROD_JOBS" || o.Consumer() != "acme-prod-workers" {
		t.Errorf("prefixed names: %s %s %s", o.Jobs("m"), o.JobsStream(), o.Consumer())
	}
	if s.ModelOf("gearbox.jobs.m") != "m" || s.ModelOf("gearbox.jobs.a.b") != "" || s.ModelOf("other.jobs.m") != "" {
		t.Error("ModelOf misparses")
	}
	if _, err := gearbox.NewSubjects("bad prefix"); err == nil {
		t.Error("NewSubjects accepted a prefix with a space")
	}
}

func TestStreamsConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  gearbox.StreamsConfig
		want string // "" = valid
	}{
		{"defaults", gearbox.StreamsConfig{}, ""},
		{"redelivery outlasts dedupe", gearbox.StreamsConfig{AckWait: time.Minute, MaxDeliver: 10, ResultsDuplicates: 5 * time.Minute}, "second result"},
		{"dedupe over max age", gearbox.StreamsConfig{ResultsMaxAge: time.Minute}, "exceeds results max age"},
		{"short ack wait", gearbox.StreamsConfig{AckWait: time.Millisecond}, "under 1s"},
		{"replicas", gearbox.StreamsConfig{Replicas: 7}, "replicas"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v; want nil", c.name, err)
			}
			continue
		}
		if !errors.Is(err, gearbox.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v; want ErrInvalidOption mentioning %q", c.name, err, c.want)
		}
	}
}

// TestDefaultStreamsConfig: the zero StreamsConfig takes exactly
// DefaultStreamsConfig's values, and they are valid.
func TestDefaultStreamsConfig(t *testing.T) {
	d := gearbox.DefaultStreamsConfig()
	if got := (gearbox.StreamsConfig{}).WithDefaults(); got != d {
		t.Errorf("StreamsConfig{}.WithDefaults() = %+v; want DefaultStreamsConfig() %+v", got, d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultStreamsConfig().Validate() = %v", err)
	}
}

// TestFloat32sNonFinite: every dtype rejects NaN and ±Inf wherever they
// are, naming the element, and passes every finite value bit for bit
// (largest, subnormal, negative zero), appending to what dst holds.
func TestFloat32sNonFinite(t *testing.T) {
	finite := []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Copysign(0, -1)), 1.5, -2}
	ft := gearbox.NewTensor(2, 3, finite)
	got, err := ft.Float32s([]float32{7})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 7 || len(got) != 7 {
		t.Fatalf("appended to a 1-value dst: %v", got)
	}
	for i, v := range finite {
		if math.Float32bits(got[i+1]) != math.Float32bits(v) {
			t.Errorf("value %d: %v (bits %#x); want %v", i, got[i+1], math.Float32bits(got[i+1]), v)
		}
	}
	bad := map[string]uint32{"NaN": 0x7fc00001, "+Inf": 0x7f800000, "-Inf": 0xff800000, "-NaN": 0xffc00000}
	for name, bits := range bad {
		for pos := range 6 {
			vals := []float32{1, 2, 3, 4, 5, 6}
			vals[pos] = math.Float32frombits(bits)
			f32 := gearbox.NewTensor(2, 3, vals)
			// f16 and bf16 forms of the same special: top halves, and the
			// fp16 exponent-all-ones codes.
			bf16 := gearbox.Tensor{DType: gearbox.BF16, Shape: []int{2, 3}, Data: make([]byte, 12)}
			f16 := gearbox.Tensor{DType: gearbox.F16, Shape: []int{2, 3}, Data: make([]byte, 12)}
			for i, v := range vals {
				b := math.Float32bits(v)
				bf16.Data[2*i], bf16.Data[2*i+1] = byte(b>>16), byte(b>>24)
				h := uint16(0x3c00) // 1.0
				if i == pos {
					h = uint16(b>>16)&0x8000 | 0x7c00 | uint16(b>>13)&0x3ff
				}
				f16.Data[2*i], f16.Data[2*i+1] = byte(h), byte(h>>8)
			}
			want := fmt.Sprintf("row %d, feature %d", pos/3, pos%3)
			for _, tn := range []gearbox.Tensor{f32, bf16, f16} {
				out, err := tn.Float32s([]float32{9})
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "non-finite") {
					t.Errorf("%s %s at %d: err %v; want non-finite at %s", tn.DType, name, pos, err, want)
				}
				if len(out) != 1 || out[0] != 9 {
					t.Errorf("%s %s at %d: dst after the error %v; want the prefix [9]", tn.DType, name, pos, out)
				}
			}
		}
	}
}

// TestJSONNonFinite: a JSON result never switches to base64 for outputs a
// JSON number cannot carry: they are the strings "NaN", "Infinity" and
// "-Infinity" among the values, and decode back; jobs still reject them.
func TestJSONNonFinite(t *testing.T) {
	out := gearbox.NewTensor(1, 4, []float32{1.5, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))})
	r := &gearbox.Result{ID: "x", Output: &out, NonFinite: out.NonFinite()}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"values":[1.5,"NaN","Infinity","-Infinity"]`; !strings.Contains(string(b), want) || !strings.Contains(string(b), `"non_finite":3`) {
		t.Fatalf("JSON result %s; want it to hold %s and non_finite 3", b, want)
	}
	got, err := gearbox.DecodeResult(b, gearbox.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if got.NonFinite != 3 || got.Output.NonFinite() != 3 {
		t.Errorf("decoded non_finite %d, %d non-finite outputs; want 3, 3", got.NonFinite, got.Output.NonFinite())
	}
	at := func(i int) float64 {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(got.Output.Data[4*i:])))
	}
	if at(0) != 1.5 || !math.IsNaN(at(1)) || !math.IsInf(at(2), 1) || !math.IsInf(at(3), -1) {
		t.Errorf("decoded values %v %v %v %v; want 1.5 NaN +Inf -Inf", at(0), at(1), at(2), at(3))
	}
	if _, err := gearbox.DecodeJob([]byte(`{"id":"j","model":"m","input":{"values":[1,"NaN"]}}`), gearbox.JSON); err == nil || !strings.Contains(err.Error(), "input.values") {
		t.Errorf("a job with a NaN string: err %v; want a bad_request naming input.values", err)
	}
}

// TestOutputDType: a job's output_dtype survives both encodings (and a bad
// one is refused by the decoder, naming the field), and NewTensorAs
// stores the values rounded to nearest even as bf16 or f16.
func TestOutputDType(t *testing.T) {
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		j := sampleJob()
		j.OutputDType = gearbox.F16
		b, err := enc.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := gearbox.DecodeJob(b, enc)
		if err != nil || got.OutputDType != gearbox.F16 {
			t.Errorf("%v: decoded output_dtype %q, %v; want f16", enc, got.OutputDType, err)
		}
		j.OutputDType = "int4"
		b, _ = enc.Marshal(j)
		if _, err := gearbox.DecodeJob(b, enc); err == nil || !strings.Contains(err.Error(), "output_dtype") {
			t.Errorf("%v: output_dtype int4 decoded with %v; want an error naming output_dtype", enc, err)
		}
	}
	// 65520 rounds to +Inf in f16 (its largest finite value is 65504).
	vs := []float32{1, 1.00390625, 65520, -3.14159265, float32(math.Inf(1))}
	for _, c := range []struct {
		dtype     gearbox.DType
		round     func(float32) float32
		decode    func(uint16) float32
		nonFinite int
	}{
		{gearbox.BF16, precision.RoundBF16, precision.DecodeBF16, 1},
		{gearbox.F16, precision.RoundFP16, precision.DecodeFP16, 2},
	} {
		tn := gearbox.NewTensorAs(1, len(vs), vs, c.dtype)
		if len(tn.Data) != 2*len(vs) || tn.DType != c.dtype || tn.Check() != nil {
			t.Fatalf("%s: %d bytes of %s: %v", c.dtype, len(tn.Data), tn.DType, tn.Check())
		}
		for i, v := range vs {
			got := c.decode(binary.LittleEndian.Uint16(tn.Data[2*i:]))
			if want := c.round(v); got != want {
				t.Errorf("%s: value %d = %v; want %v (%v rounded)", c.dtype, i, got, want, v)
			}
		}
		if n := tn.NonFinite(); n != c.nonFinite {
			t.Errorf("%s: %d non-finite values; want %d", c.dtype, n, c.nonFinite)
		}
	}
}
