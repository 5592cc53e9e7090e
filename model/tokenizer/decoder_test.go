package tokenizer_test

import (
	"errors"
	"testing"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

func TestDecoderHoldsPartialCharacters(t *testing.T) {
	// The tiny tokenizer has few merges: most characters beyond ASCII
	// arrive a byte per token.
	tk := load(t, "tiny")
	text := "a😀b你好🇩🇪ß!"
	got, held, err := stream(tk, tk.Encode(text, false), false)
	if err != nil || got != text {
		t.Errorf("streamed %q, %v; want %q", got, err, text)
	}
	if held < 10 {
		t.Errorf("only %d ids ended inside a character; the test needs split characters", held)
	}
}

func TestDecoderFlushAndErrors(t *testing.T) {
	tk := load(t, "tiny")
	ids := tk.Encode("😀", false)
	d := tk.NewDecoder(true)
	for _, id := range ids[:3] {
		if s, err := d.Add(id); s != "" || err != nil {
			t.Fatalf("Add(%d): got %q, %v; want nothing yet", id, s, err)
		}
	}
	if _, err := d.Add(tk.VocabSize()); !errors.Is(err, tokenizer.ErrUnknownID) {
		t.Errorf("Add(unknown): got %v; want ErrUnknownID", err)
	}
	// An unknown id leaves the Decoder as it was: the emoji completes.
	if s, err := d.Add(ids[3]); s != "😀" || err != nil {
		t.Errorf("Add(last byte): got %q, %v; want 😀", s, err)
	}
	// The end of the stream inside a character: U+FFFD, as Decode gives.
	d.Add(ids[0])
	d.Add(ids[1])
	bos, _ := tk.ID("<|bos|>")
	if s, _ := d.Add(bos); s != "" {
		t.Errorf("Add(special) with skipSpecial: got %q; want nothing", s)
	}
	if got := d.Flush(); got != "\uFFFD" {
		t.Errorf("Flush: got %q; want U+FFFD", got)
	}
	if got := d.Flush(); got != "" {
		t.Errorf("second Flush: got %q; want nothing", got)
	}
}

func TestDecoderReal(t *testing.T) {
	// Emoji and CJK in the real vocabularies: some take several tokens.
	text := "結論：😀👨‍👩‍👧 🫠 Ω ग्र 🇯🇵 done"
	for _, name := range realNames {
		t.Run(name, func(t *testing.T) {
			tk := load(t, name)
			ids := tk.Encode(text, false)
			got, held, err := stream(tk, ids, false)
			if err != nil || got != text {
				t.Errorf("streamed %q, %v; want %q", got, err, text)
			}
			if held == 0 {
				t.Errorf("no id ended inside a character (%d ids): the test needs split characters", len(ids))
			}
		})
	}
}
