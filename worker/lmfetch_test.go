package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/model/lm"
)

// TestLanguageModelFetchedOnce: workers sharing a model set that meet a
// language model at once fetch it once — a checkpoint is gigabytes in
// memory — and all serve that one fetch; a failed fetch's error reaches
// every caller that waited for it, and the next caller fetches again.
func TestLanguageModelFetchedOnce(t *testing.T) {
	m, err := lm.Load("../testdata/models/gocoder")
	if err != nil {
		t.Fatal(err)
	}
	const callers = 4
	var calls atomic.Int32
	release := make(chan error)
	s := NewModels()
	s.FetchLM = func(ctx context.Context, name string) (*lm.Model, error) {
		calls.Add(1)
		if err := <-release; err != nil {
			return nil, err
		}
		return m, nil
	}
	waiting := make(chan struct{}, callers)
	testHookLMWait = func() { waiting <- struct{}{} }
	t.Cleanup(func() { testHookLMWait = nil })

	fetchAll := func(fetchErr error) []error {
		errs := make([]error, callers)
		served := make([]*lmServed, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				served[i], _, errs[i] = s.fetchLanguageModel(context.Background(), "gocoder", zerolog.Nop())
			})
		}
		for range callers - 1 { // everyone but the fetcher waits for it
			select {
			case <-waiting:
			case <-time.After(10 * time.Second):
				t.Fatalf("%d fetches started for %d callers; want 1, the others waiting", calls.Load(), callers)
			}
		}
		release <- fetchErr
		wg.Wait()
		if fetchErr == nil {
			for i, l := range served {
				if l == nil || l.m != m {
					t.Errorf("caller %d: served %v; want the fetched model", i, l)
				}
			}
		}
		return errs
	}
	boom := errors.New("object store unreachable")
	for i, err := range fetchAll(boom) {
		if !errors.Is(err, boom) {
			t.Errorf("caller %d after a failed fetch: %v; want %v", i, err, boom)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d fetches for %d callers at once; want 1", n, callers)
	}
	for i, err := range fetchAll(nil) {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d fetches in all, want 2: one that failed, one that served", n)
	}
}
