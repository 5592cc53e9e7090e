package precision

import "errors"

var (
	// ErrUnknown is returned (wrapped) by Parse for a name that is not a
	// format, and by Select for a request or policy that is not one.
	ErrUnknown = errors.New("unknown precision")

	// ErrUnsupported is returned (wrapped) by Select when the device cannot
	// run the requested precision; the message names what it can run.
	ErrUnsupported = errors.New("precision not supported")

	// ErrInvalidLadder is returned (wrapped) by ValidateLadder and Select for
	// a ladder that breaks its rules.
	ErrInvalidLadder = errors.New("invalid precision ladder")

	// ErrShape is returned (wrapped) by the tensor quantizers when the data
	// does not hold rows × cols values or a dimension is negative.
	ErrShape = errors.New("tensor shape mismatch")

	// ErrInvalidMargin is returned (wrapped) by the fp8 tensor quantizers
	// for a margin outside 0..MaxMargin.
	ErrInvalidMargin = errors.New("invalid fp8 scaling margin")
)
