package gearbox_test

import (
	"testing"

	"github.com/gearbox-inference/gearbox"
)

// FuzzDecodeJob feeds arbitrary bytes to the job decoder in both
// encodings: it must never panic, and whatever decodes and validates must
// survive a re-encode unchanged in meaning.
func FuzzDecodeJob(f *testing.F) {
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		b, _ := enc.Marshal(sampleJob())
		f.Add(b, enc == gearbox.JSON)
	}
	f.Add([]byte(`{"id":"a","model":"m","input":{"values":[1,2,3]}}`), true)
	f.Add([]byte(`{"id":"a","model":"m","input":{"dtype":"bf16","shape":[1,1],"data":"gD8="}}`), true)
	f.Add([]byte{0x81, 0xa2, 'i', 'd', 0xc0}, false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		enc := gearbox.Msgpack
		if isJSON {
			enc = gearbox.JSON
		}
		j, err := gearbox.DecodeJob(data, enc)
		if err != nil {
			if e := gearbox.AsError(err); e.Code != gearbox.CodeBadRequest {
				t.Fatalf("decode error code %s; want bad_request", e.Code)
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
		if j2.ID != j.ID || j2.Model != j.Model || j2.Input.Rows() != j.Input.Rows() {
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
