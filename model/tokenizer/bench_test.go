package tokenizer_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEncode encodes the toolchain's net/http/server.go (128 KiB of
// Go) with each tokenizer; the word cache is warm after the first
// iteration, as on a worker that has seen a few prompts.
func BenchmarkEncode(b *testing.B) {
	text := bigGoFile(b)
	for _, name := range append(append([]string{}, realNames...), tinyNames...) {
		b.Run(name, func(b *testing.B) {
			t := load(b, name)
			n := len(t.Encode(text, false))
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				t.Encode(text, false)
			}
			b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "tokens/s")
		})
	}
}

// BenchmarkEncodeCold encodes the same file with a fresh tokenizer each
// time: every word goes through BPE once.
func BenchmarkEncodeCold(b *testing.B) {
	text := bigGoFile(b)
	for _, name := range realNames {
		b.Run(name, func(b *testing.B) {
			n := len(load(b, name).Encode(text, false))
			b.SetBytes(int64(len(text)))
			var spent time.Duration
			for range b.N {
				b.StopTimer()
				t := loadFresh(b, name)
				b.StartTimer()
				start := time.Now()
				t.Encode(text, false)
				spent += time.Since(start)
			}
			b.ReportMetric(float64(n*b.N)/spent.Seconds(), "tokens/s")
		})
	}
}

// BenchmarkDecode decodes the ids of the same file.
func BenchmarkDecode(b *testing.B) {
	text := bigGoFile(b)
	for _, name := range realNames {
		b.Run(name, func(b *testing.B) {
			t := load(b, name)
			ids := t.Encode(text, false)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := t.Decode(ids, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(ids)*b.N)/time.Since(start).Seconds(), "tokens/s")
		})
	}
}

// BenchmarkEncodeParallel encodes lines of the file from all goroutines at
// once, sharing the tokenizer and its word cache.
func BenchmarkEncodeParallel(b *testing.B) {
	lines := strings.SplitAfter(bigGoFile(b), "\n")
	for _, name := range realNames {
		b.Run(name, func(b *testing.B) {
			t := load(b, name)
			var tokens atomic.Int64
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					tokens.Add(int64(len(t.Encode(lines[i%len(lines)], false))))
					i++
				}
			})
			b.ReportMetric(float64(tokens.Load())/time.Since(start).Seconds(), "tokens/s")
		})
	}
}
