package gearbox_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// mp builds msgpack by hand, for payloads no encoder would write.
type mp struct{ bytes.Buffer }

func (b *mp) mapHdr(n int) *mp { b.WriteByte(0xdf); b.u32(uint32(n)); return b }
func (b *mp) arr(n uint32) *mp { b.WriteByte(0xdd); b.u32(n); return b }
func (b *mp) str(s string) *mp {
	b.WriteByte(0xdb)
	b.u32(uint32(len(s)))
	b.WriteString(s)
	return b
}
func (b *mp) u32(v uint32) { _ = binary.Write(&b.Buffer, binary.BigEndian, v) }

// allocated is the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecodeBombs: payloads that declare far more than they hold, or nest
// without end, are rejected with a bad_request naming the problem, using
// memory bounded by a small multiple of their size. Before the bounded
// decoder, the first made the msgpack library allocate 17 GB and the nested
// ones overflowed the stack (a fatal error, not a recoverable panic).
func TestDecodeBombs(t *testing.T) {
	var shapeBomb mp // 56 bytes or so: shape claims 2^31 elements
	shapeBomb.mapHdr(3).str("id").str("a").str("model").str("m").str("input")
	shapeBomb.mapHdr(1).str("shape").arr(1 << 31)
	var mapBomb mp
	mapBomb.mapHdr(1<<31 - 1)
	var binBomb mp
	binBomb.mapHdr(1).str("input").mapHdr(1).str("data")
	binBomb.WriteByte(0xc6)
	binBomb.u32(1<<32 - 1)
	nested := func(n int) []byte { // {"x": [[[[...]]]]}
		var b mp
		b.mapHdr(1).str("x")
		b.Write(bytes.Repeat([]byte{0x91}, n))
		b.WriteByte(0xc0)
		return b.Bytes()
	}
	cases := []struct {
		name string
		data []byte
		enc  gearbox.Encoding
		want string
	}{
		{"shape claims 2^31 elements", shapeBomb.Bytes(), gearbox.Msgpack, "declares 2147483648 elements"},
		{"map claims 2^31 entries", mapBomb.Bytes(), gearbox.Msgpack, "declares"},
		{"bin claims 4 GiB", binBomb.Bytes(), gearbox.Msgpack, "declares 4294967295 bytes"},
		{"7 MB of nested arrays", nested(7 << 20), gearbox.Msgpack, "nested too deeply"},
		{"17 nested arrays", nested(gearbox.MaxDepth), gearbox.Msgpack, "nested too deeply"},
		{"JSON nested arrays", []byte(`{"x":` + strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + `}`), gearbox.JSON, "malformed json job"},
		{"truncated", shapeBomb.Bytes()[:20], gearbox.Msgpack, "malformed msgpack job"},
		{"trailing bytes", append(mustMarshal(t, sampleJob()), 0xc0), gearbox.Msgpack, "trailing data"},
		{"not a map", []byte{0x93, 1, 2, 3}, gearbox.Msgpack, "must be a map"},
		{"unused type byte", []byte{0xc1}, gearbox.Msgpack, "not a msgpack type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = gearbox.DecodeJob(c.data, c.enc) })
			var e *gearbox.Error
			if !errors.As(err, &e) || e.Code != gearbox.CodeBadRequest || !strings.Contains(e.Message, c.want) {
				t.Fatalf("DecodeJob: %v; want bad_request mentioning %q", err, c.want)
			}
			if limit := 8*uint64(len(c.data)) + 1<<20; n > limit {
				t.Errorf("decoding %d bytes allocated %d; want at most %d", len(c.data), n, limit)
			}
			if len(e.Message) > 300 {
				t.Errorf("error message is %d bytes; want it short: %.300s", len(e.Message), e.Message)
			}
		})
	}
	// Nesting within MaxDepth is fine, in fields the decoder skips.
	if _, err := gearbox.DecodeJob(nested(gearbox.MaxDepth-2), gearbox.Msgpack); err != nil {
		t.Errorf("nesting %d deep: %v", gearbox.MaxDepth-1, err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeKeepsIDAndReplyTo: a job whose other fields are invalid still
// yields its id and reply_to, so its error can be answered under its id.
func TestDecodeKeepsIDAndReplyTo(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		enc  gearbox.Encoding
		want string
	}{
		{"JSON meta value not a string", []byte(`{"meta":{"k":1},"id":"j1","reply_to":"_INBOX.x","model":"m"}`), gearbox.JSON, `meta["k"]: want a string, got a number`},
		{"msgpack meta value not a string", mustMarshal(t, map[string]any{"meta": map[string]any{"k": 1}, "id": "j1", "reply_to": "_INBOX.x", "model": "m"}), gearbox.Msgpack, `meta["k"]: want a string, got integer`},
		{"JSON bad shape", []byte(`{"input":{"shape":"x"},"id":"j1","reply_to":"_INBOX.x"}`), gearbox.JSON, "input.shape: want an array"},
		{"msgpack data as numbers", mustMarshal(t, map[string]any{"input": map[string]any{"data": []int{1, 2}}, "id": "j1", "reply_to": "_INBOX.x"}), gearbox.Msgpack, "input.data: want msgpack bin"},
		{"JSON unknown precision", []byte(`{"precision":"int8","id":"j1","reply_to":"_INBOX.x"}`), gearbox.JSON, "fp32, tf32, bf16, fp16, fp8 or fp4"},
		{"msgpack priority a string", mustMarshal(t, map[string]any{"priority": "high", "id": "j1", "reply_to": "_INBOX.x"}), gearbox.Msgpack, "priority: want an integer, got string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := gearbox.DecodeJob(c.data, c.enc)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v; want it to mention %q", err, c.want)
			}
			if j == nil || j.ID != "j1" || j.ReplyTo != "_INBOX.x" {
				t.Fatalf("job = %+v; want id j1 and reply_to _INBOX.x kept", j)
			}
		})
	}
}

// TestDecodeFieldBounds: every field is bounded before use; an oversized one
// is dropped from the job (never echoed whole) and named in the error.
func TestDecodeFieldBounds(t *testing.T) {
	huge := strings.Repeat("x", 4<<20)
	manyMeta := map[string]any{}
	for i := range gearbox.MaxMetaEntries + 1 {
		manyMeta[strings.Repeat("k", i+1)] = "v"
	}
	cases := []struct {
		name  string
		job   map[string]any
		want  string
		check func(*gearbox.Job) bool
	}{
		{"4 MiB id", map[string]any{"id": huge, "model": "m"}, "id is 4194304 bytes; at most 128", func(j *gearbox.Job) bool { return j.ID == "" && j.Model == "m" }},
		{"id with a newline", map[string]any{"id": "a\r\nNats-Msg-Id: b"}, "control character", func(j *gearbox.Job) bool { return j.ID == "" }},
		{"4 MiB model", map[string]any{"id": "j", "model": huge}, "model is 4194304 bytes; at most 64", func(j *gearbox.Job) bool { return j.Model == "" && j.ID == "j" }},
		{"4 MiB reply_to", map[string]any{"id": "j", "reply_to": huge}, "reply_to is 4194304 bytes", func(j *gearbox.Job) bool { return j.ReplyTo == "" }},
		{"wildcard reply_to", map[string]any{"id": "j", "reply_to": "a.>"}, "not a valid subject", func(j *gearbox.Job) bool { return j.ReplyTo == "" }},
		{"4 MiB meta value", map[string]any{"id": "j", "meta": map[string]any{"k": huge}}, "more than 16384 bytes", func(j *gearbox.Job) bool { return len(j.Meta) == 0 }},
		{"too many meta entries", map[string]any{"id": "j", "meta": manyMeta}, "more than 64 entries", func(j *gearbox.Job) bool { return len(j.Meta) == gearbox.MaxMetaEntries }},
	}
	for _, c := range cases {
		for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
			t.Run(c.name+"/"+enc.String(), func(t *testing.T) {
				data, err := enc.Marshal(c.job)
				if err != nil {
					t.Fatal(err)
				}
				j, err := gearbox.DecodeJob(data, enc)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v; want it to mention %q", err, c.want)
				}
				if len(err.Error()) > 300 {
					t.Errorf("error is %d bytes; want a short message", len(err.Error()))
				}
				if !c.check(j) {
					t.Errorf("decoded job %.200v keeps an out-of-bounds field", j)
				}
			})
		}
	}
}

// TestDecodeValuesInMsgpack: an array of numbers as input.values works in
// msgpack as in JSON, so clients need not pack bytes; precision names are
// case-insensitive.
func TestDecodeValuesInMsgpack(t *testing.T) {
	data := mustMarshal(t, map[string]any{"id": "v", "model": "m", "precision": "FP16",
		"input": map[string]any{"shape": []int{2, 2}, "values": []any{1, 2.5, -3, float32(0.25)}}})
	j, err := gearbox.DecodeJob(data, gearbox.Msgpack)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Input.Values()
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{1, 2.5, -3, 0.25}; !slicesEqual(got, want) || j.Input.Rows() != 2 {
		t.Errorf("values %v rows %d; want %v in 2 rows", got, j.Input.Rows(), want)
	}
	if j.Precision != precision.FP16 {
		t.Errorf("precision %q; want fp16", j.Precision)
	}
	if err := j.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
