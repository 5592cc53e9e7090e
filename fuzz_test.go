package gearbox_test

import (
	"runtime/metrics"
	"testing"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// heapAllocs reads the bytes allocated so far by the process.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// boundedAlloc fails t when decode allocated more than a small multiple of
// the payload: the decoders' promise against payloads that declare more
// than they hold. (Other goroutines of the fuzzer allocate little; the
// margin covers them.)
func boundedAlloc(t *testing.T, data []byte, decode func()) {
	before := heapAllocs()
	decode()
	if n, limit := heapAllocs()-before, 16*uint64(len(data))+4<<20; n > limit {
		t.Fatalf("decoding %d bytes allocated %d; want at most %d", len(data), n, limit)
	}
}

// encodings runs seeds in both encodings.
func encodings(isJSON bool) gearbox.Encoding {
	if isJSON {
		return gearbox.JSON
	}
	return gearbox.Msgpack
}

// FuzzDecodeJob feeds arbitrary bytes to the job decoder in both
// encodings: it must never panic, allocate more than a small multiple of the
// payload, or answer with anything but bad_request; whatever decodes and
// validates must survive a re-encode unchanged in meaning.
func FuzzDecodeJob(f *testing.F) {
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		b, _ := enc.Marshal(sampleJob())
		f.Add(b, enc == gearbox.JSON)
	}
	f.Add([]byte(`{"id":"a","model":"m","input":{"values":[1,2,3]}}`), true)
	f.Add([]byte(`{"id":"a","model":"m","input":{"dtype":"bf16","shape":[1,1],"data":"gD8="}}`), true)
	f.Add([]byte(`{"id":"a","meta":{"k":1},"input":{"shape":"x"}}`), true)
	f.Add([]byte{0x81, 0xa2, 'i', 'd', 0xc0}, false)
	f.Add([]byte{0x82, 0xa2, 'i', 'd', 0xa1, 'a', 0xa5, 'i', 'n', 'p', 'u', 't', 0x81, 0xa5, 's', 'h', 'a', 'p', 'e', 0xdd, 0x80, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		enc := encodings(isJSON)
		var j *gearbox.Job
		var err error
		boundedAlloc(t, data, func() { j, err = gearbox.DecodeJob(data, enc) })
		if err != nil {
			if e := gearbox.AsError(err); e.Code != gearbox.CodeBadRequest {
				t.Fatalf("decode error code %s; want bad_request", e.Code)
			}
			if j != nil && (len(j.ID) > gearbox.MaxIDLen || len(j.ReplyTo) > gearbox.MaxReplyToLen) {
				t.Fatalf("a partly decoded job keeps an out-of-bounds id or reply_to")
			}
			return
		}
		if j.Validate() != nil {
			return
		}
		vals, verr := j.Input.Values()
		again, err := enc.Marshal(j)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		j2, err := gearbox.DecodeJob(again, enc)
		if err != nil {
			t.Fatalf("decode of re-encoded job: %v", err)
		}
		if j2.ID != j.ID || j2.Model != j.Model || j2.Input.Rows() != j.Input.Rows() || j2.ReplyTo != j.ReplyTo {
			t.Fatalf("round trip changed the job: %+v vs %+v", j, j2)
		}
		if verr == nil {
			vals2, err := j2.Input.Values()
			if err != nil || len(vals2) != len(vals) {
				t.Fatalf("round trip changed the input: %v", err)
			}
		}
	})
}

// FuzzDecodeResult: results are read by clients from the result stream.
func FuzzDecodeResult(f *testing.F) {
	out := gearbox.NewTensor(1, 2, []float32{1, 2})
	r := &gearbox.Result{ID: "a", Model: "m", Output: &out, Worker: "w", Error: &gearbox.Error{Code: gearbox.CodeInternal, Message: "x"}, Meta: map[string]string{"k": "v"}}
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		b, _ := enc.Marshal(r)
		f.Add(b, enc == gearbox.JSON)
	}
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		boundedAlloc(t, data, func() { _, _ = gearbox.DecodeResult(data, encodings(isJSON)) })
	})
}

// FuzzDecodeQualityReport: reports are replayed by every controller.
func FuzzDecodeQualityReport(f *testing.F) {
	top := 0.5
	r := &gearbox.QualityReport{Model: "m", Served: "bf16", Initial: "fp32", MaxError: 0.1, Ladder: []precision.Format{"fp32", "bf16"},
		ServedMetrics: gearbox.QualityMetrics{RelL2: 0.01, Top1: &top}}
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		b, _ := enc.Marshal(r)
		f.Add(b, enc == gearbox.JSON)
	}
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		boundedAlloc(t, data, func() { _, _ = gearbox.DecodeQualityReport(data, encodings(isJSON)) })
	})
}

// FuzzDecodePolicy: policies are read from the KV bucket by every worker.
func FuzzDecodePolicy(f *testing.F) {
	f.Add([]byte(`{"model":"m","precision":"bf16","floor":"fp4","ceiling":"fp32","reason":"x","seq":3,"by":"w","updated_at":"2026-01-01T00:00:00Z","measured":{"bf16":0.01}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		boundedAlloc(t, data, func() { _, _ = gearbox.DecodePolicy(data) })
	})
}
