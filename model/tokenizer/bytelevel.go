package tokenizer

import "unicode/utf8"

// The byte-level alphabet of GPT-2: every byte is a printable character, so
// BPE works on characters while covering all bytes. The printable bytes
// '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves; the others, in
// order, are U+0100, U+0101, ... (a space is Ġ, U+0120).
var (
	// byteChar is the character of each byte.
	byteChar [256]rune
	// charByte maps a character back to its byte; ok is false for
	// characters outside the alphabet.
	charByte = map[rune]byte{}
)

func init() {
	n := rune(0)
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteChar[b] = rune(b)
		} else {
			byteChar[b] = 256 + n
			n++
		}
		charByte[byteChar[b]] = byte(b)
	}
}

// appendByteLevel appends the byte-level form of s (one character per byte).
func appendByteLevel(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = utf8.AppendRune(dst, byteChar[s[i]])
	}
	return dst
}

// byteLevelDecode returns the bytes a token stands for, as the ByteLevel
// decoder computes them: each character's byte, or, when any character is
// outside the alphabet (an added token such as "<|im_start|> "), the
// token's own UTF-8 bytes.
func byteLevelDecode(token string) string {
	out := make([]byte, 0, len(token))
	for _, r := range token {
		b, ok := charByte[r]
		if !ok {
			return token
		}
		out = append(out, b)
	}
	return string(out)
}
