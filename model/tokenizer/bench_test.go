package tokenizer_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rates reports tokens per second of wall clock and, where measured, of
// CPU time (steadier on a shared machine), for tokens handled since the
// wall clock read start and the CPU clock read cpuStart.
func rates(b *testing.B, tokens int, start time.Time, cpuStart time.Duration) {
	b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tokens/s")
	if cpu := cpuTime() - cpuStart; cpuStart > 0 && cpu > 0 {
		b.ReportMetric(float64(tokens)/cpu.Seconds(), "tokens/cpu-s")
	}
}

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
			start, cpuStart := time.Now(), cpuTime()
			for range b.N {
				t.Encode(text, false)
			}
			rates(b, n*b.N, start, cpuStart)
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
			var wall, cpu time.Duration
			for range b.N {
				b.StopTimer()
				t := loadFresh(b, name)
				b.StartTimer()
				start, cpuStart := time.Now(), cpuTime()
				t.Encode(text, false)
				wall, cpu = wall+time.Since(start), cpu+cpuTime()-cpuStart
			}
			b.ReportMetric(float64(n*b.N)/wall.Seconds(), "tokens/s")
			if cpu > 0 {
				b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "tokens/cpu-s")
			}
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
			start, cpuStart := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					tokens.Add(int64(len(t.Encode(lines[i%len(lines)], false))))
					i++
				}
			})
			rates(b, int(tokens.Load()), start, cpuStart)
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
			start, cpuStart := time.Now(), cpuTime()
			for range b.N {
				if _, err := t.Decode(ids, false); err != nil {
					b.Fatal(err)
				}
			}
			rates(b, len(ids)*b.N, start, cpuStart)
		})
	}
}

// BenchmarkLoad reads the real tokenizer files.
func BenchmarkLoad(b *testing.B) {
	for _, name := range realNames {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				loadFresh(b, name)
			}
		})
	}
}
