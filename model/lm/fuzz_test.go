package lm_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/gearbox-inference/gearbox/model/lm"
)

// FuzzConfig feeds arbitrary bytes to ParseConfig. It must never panic,
// must reject with ErrInvalidConfig or ErrUnsupported, and what it accepts
// must be valid, with sizes inside the limits, and must encode to a
// config.json that parses to the same Config. The seed corpus (real
// configs of each architecture and both transformers formats) is in
// testdata/fuzz.
func FuzzConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := lm.ParseConfig(data)
		if err != nil {
			if !errors.Is(err, lm.ErrInvalidConfig) && !errors.Is(err, lm.ErrUnsupported) {
				t.Fatalf("error %v wraps neither %v nor %v", err, lm.ErrInvalidConfig, lm.ErrUnsupported)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
		if c.QDim() > lm.MaxHeads*lm.MaxHeadDim || c.Heads%c.KVHeads != 0 || c.HeadDim%2 != 0 {
			t.Fatalf("accepted inconsistent shapes %+v", c)
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("encoding an accepted config: %v", err)
		}
		back, err := lm.ParseConfig(enc)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", enc, err)
		}
		if !reflect.DeepEqual(c, back) {
			t.Errorf("round trip changed the config:\n got %+v\nwant %+v", back, c)
		}
	})
}
