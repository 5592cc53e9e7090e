package tokenizer

// Decoder decodes a stream of ids, one at a time, into text. A byte-level
// token may hold part of a UTF-8 character (an emoji or a CJK character is
// often two or three tokens): the Decoder holds such bytes back until the
// tokens that complete the character arrive, so it never returns half a
// character. The concatenation of what Add and Flush return is what Decode
// returns for all the ids. A Decoder is not safe for concurrent use.
type Decoder struct {
	t           *Tokenizer
	skipSpecial bool
	pending     []byte // bytes of an incomplete character
	out         []byte
}

// NewDecoder returns a Decoder; with skipSpecial, special tokens decode to
// nothing, as with Decode.
func (t *Tokenizer) NewDecoder(skipSpecial bool) *Decoder {
	return &Decoder{t: t, skipSpecial: skipSpecial}
}

// Add decodes one more id and returns the text it completes: possibly
// empty, when the id ends inside a character. An id that is not a token is
// an ErrUnknownID, and leaves the Decoder as it was.
func (d *Decoder) Add(id int) (string, error) {
	b, err := d.t.tokenBytes(id, d.skipSpecial)
	if err != nil {
		return "", err
	}
	d.pending = append(d.pending, b...)
	var n int
	d.out, n = appendValid(d.out[:0], d.pending, true)
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return string(d.out), nil
}

// Flush returns the bytes held back (an incomplete character at the end of
// the stream, as U+FFFD) and empties the Decoder for reuse.
func (d *Decoder) Flush() string {
	var out []byte
	out, _ = appendValid(d.out[:0], d.pending, false)
	d.pending = d.pending[:0]
	return string(out)
}
