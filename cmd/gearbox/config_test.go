package main

import "testing"

// TestPrefixCacheSetting: GEARBOX_PREFIX_CACHE, on unless false, reaches
// the worker's engines as LMNoPrefixCache.
func TestPrefixCacheSetting(t *testing.T) {
	for _, c := range []struct {
		environ []string
		off     bool
	}{
		{nil, false},
		{[]string{"GEARBOX_PREFIX_CACHE=true"}, false},
		{[]string{"GEARBOX_PREFIX_CACHE=false"}, true},
	} {
		cfg, err := loadConfig(c.environ)
		if err != nil {
			t.Fatal(err)
		}
		s, err := cfg.subjects()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.worker(s).LMNoPrefixCache; got != c.off {
			t.Errorf("%v: LMNoPrefixCache %v; want %v", c.environ, got, c.off)
		}
	}
}
