package cpu_test

import (
	"testing"

	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/internal/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

func TestLMSmoke(t *testing.T) {
	b := newBackend(t, 0)
	for _, a := range lm.Archs {
		m := lmModel(t, a)
		toks := randTokens(1, 40, m.Config.Vocab)
		ref, err := cpu.LMReference(m, toks)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range precision.All {
			s := newSession(t, b, m, p, 16)
			got := s.decodeLogits(toks)
			e := kt.RelL2(got, ref)
			mr, _ := kt.MaxRel(got, ref)
			t.Logf("%s %s: rel L2 %.3g max rel %.3g", a, p, e, mr)
		}
	}
}
