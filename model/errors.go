package model

import "errors"

// Errors returned (wrapped with %w, alongside the file, layer and tensor
// they concern) by the functions of this package. Test for them with
// errors.Is.
var (
	// ErrInvalidManifest: model.json is not valid JSON, has unknown fields,
	// or breaks a rule of the format (bad name, unknown op, bad ladder, ...).
	ErrInvalidManifest = errors.New("invalid model manifest")

	// ErrInvalidSafetensors: model.safetensors is malformed (bad header,
	// unsupported dtype, offsets out of range, non-finite weights, ...), or
	// WriteSafetensors was given tensors it cannot write.
	ErrInvalidSafetensors = errors.New("invalid safetensors")

	// ErrTensorMismatch: the manifest and the weights disagree: a tensor a
	// layer names is missing or has the wrong shape, a tensor is named by
	// two layers, or the file holds a tensor no layer uses.
	ErrTensorMismatch = errors.New("model tensors do not match manifest")

	// ErrDuplicateModel: LoadAll found two model directories whose
	// manifests give the same name.
	ErrDuplicateModel = errors.New("duplicate model name")

	// ErrInvalidConfig: a SynthConfig breaks a rule stated on its fields.
	ErrInvalidConfig = errors.New("invalid synth config")

	// ErrNotFound: Fetch found no model of that name in the object store.
	// It also wraps the jetstream error that said so.
	ErrNotFound = errors.New("model not found")

	// ErrInconsistent: Fetch kept reading a model.json and a
	// model.safetensors from two different pushes (a push was in progress)
	// and gave up.
	ErrInconsistent = errors.New("model objects inconsistent")
)
