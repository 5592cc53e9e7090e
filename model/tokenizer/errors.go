package tokenizer

import "errors"

// Errors returned (wrapped with %w, with the file, the JSON field or the id
// they concern) by the functions of this package. Test for them with
// errors.Is.
var (
	// ErrInvalid: a tokenizer file is not valid JSON, or breaks a rule of
	// the format (a merge names a token the vocabulary lacks, two tokens
	// share an id, an added token's id is not the one Hugging Face would
	// give it, ...).
	ErrInvalid = errors.New("invalid tokenizer")

	// ErrUnsupported: a tokenizer file is valid but asks for something this
	// package does not implement: another model type, normalizer,
	// pre-tokenizer pattern, post-processor or decoder, truncation, padding,
	// BPE dropout or byte fallback. The error names the JSON field.
	ErrUnsupported = errors.New("unsupported tokenizer")

	// ErrUnknownID: Decode or a Decoder was given an id that is neither in
	// the vocabulary nor an added token.
	ErrUnknownID = errors.New("unknown token id")
)
