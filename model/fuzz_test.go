package model_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
)

// FuzzSafetensorsHeader feeds arbitrary bytes to ReadSafetensors. It must
// never panic, must return ErrInvalidSafetensors for what it rejects, must
// not decode more weights than the input could hold (so no allocation is
// sized by an unchecked claim), and what it accepts must write back and
// read again unchanged. The seed corpus is in testdata/fuzz.
func FuzzSafetensorsHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, _, err := model.ReadSafetensors(data)
		if err != nil {
			if !errors.Is(err, model.ErrInvalidSafetensors) {
				t.Fatalf("error %v does not wrap %v", err, model.ErrInvalidSafetensors)
			}
			return
		}
		elems := 0
		for _, x := range ts {
			elems += len(x.Data)
		}
		if 2*elems > len(data) {
			t.Fatalf("decoded %d weights from %d bytes", elems, len(data))
		}
		var buf bytes.Buffer
		if err := model.WriteSafetensors(&buf, ts); err != nil {
			t.Fatalf("writing back what was read: %v", err)
		}
		back, _, err := model.ReadSafetensors(buf.Bytes())
		if err != nil {
			t.Fatalf("reading back what was written: %v", err)
		}
		if len(back) != len(ts) {
			t.Fatalf("%d tensors after a round trip; want %d", len(back), len(ts))
		}
		for i := range ts {
			if !sameTensor(ts[i], back[i]) {
				t.Errorf("tensor %q changed in a round trip", ts[i].Name)
			}
		}
	})
}

// FuzzManifest feeds arbitrary bytes to ParseManifest. It must never
// panic, must return ErrInvalidManifest for what it rejects, and what it
// accepts must encode to JSON that parses to the same manifest. The seed
// corpus is in testdata/fuzz.
func FuzzManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := model.ParseManifest(data)
		if err != nil {
			if !errors.Is(err, model.ErrInvalidManifest) {
				t.Fatalf("error %v does not wrap %v", err, model.ErrInvalidManifest)
			}
			return
		}
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := model.ParseManifest(enc)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", enc, err)
		}
		if !reflect.DeepEqual(m, back) {
			t.Errorf("round trip changed the manifest:\n got %+v\nwant %+v", back, m)
		}
	})
}
