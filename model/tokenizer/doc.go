// Package tokenizer encodes text to token ids and decodes them back exactly
// as the Hugging Face tokenizers library does, for the byte-level BPE
// tokenizers of Llama 3, Qwen2 and Qwen3, GPT-2 and the small tokenizers the
// tokenizers library trains. It reads a tokenizer.json (and, beside it,
// tokenizer_config.json and generation_config.json for the BOS, EOS and stop
// tokens). Pure Go, no cgo.
//
// Encoding follows the library's pipeline: added and special tokens are
// found first (leftmost-longest, honouring their lstrip, rstrip,
// single_word and normalized flags), the text between them is normalized
// (none or NFC, as the file says), split by the pre-tokenizer, mapped to the
// byte-level alphabet and merged by BPE in merge-rank order; the
// post-processor then adds what it adds (a BOS for Llama 3.1 files, nothing
// for Qwen). Decoding maps tokens back to bytes and turns invalid UTF-8 into
// U+FFFD by Rust's rule (one per maximal invalid subsequence); a Decoder does
// the same token by token and never returns half a character.
//
// # The pre-tokenizer regex
//
// The Split patterns of Llama 3 (and OpenAI's cl100k) and of Qwen2/Qwen3
// use a look-ahead, \s+(?!\S), which Go's regexp (RE2) does not have. This
// package does not run a regex engine at all: it matches exactly the three
// patterns found in practice — Llama 3's, Qwen2's (the same but one digit
// at a time) and GPT-2's (the ByteLevel pre-tokenizer's own) — with a
// hand-written scanner, and rejects any other pattern with ErrUnsupported
// naming the field. The alternative, github.com/dlclark/regexp2, a
// backtracking engine with look-ahead, was measured some 30 times slower
// (BenchmarkPreTokenize) and allocates on every match, on the path every
// prompt takes; and its .NET case-insensitivity does not match "'ſ" with
// (?i:'s) as Oniguruma, the engine of the tokenizers library, does. The
// scanner is fuzzed against regexp2 in the tests, on text without that
// character.
//
// # Bad input
//
// Encode replaces invalid UTF-8 first, each maximal invalid subsequence with
// one U+FFFD, as Python's bytes.decode("utf-8", "replace") does, so the ids
// are those Hugging Face gives for that decoded text. Decode returns
// ErrUnknownID naming the first id that is not in the vocabulary (Hugging
// Face skips such ids silently).
//
// A Tokenizer is immutable once loaded and safe for concurrent use; its
// per-word BPE cache is shared by all goroutines.
package tokenizer
