package gearbox

import (
	"errors"
	"fmt"
)

// Code is a wire error code: the closed set of reasons a job can fail.
type Code string

// The error codes of wire contract v1.
const (
	// CodeBadRequest: the job could not be decoded or breaks the contract
	// (missing id, bad tensor, non-finite input, unknown precision, ...).
	CodeBadRequest Code = "bad_request"
	// CodeUnknownModel: no worker knows the model the job names.
	CodeUnknownModel Code = "unknown_model"
	// CodeShapeMismatch: the input's feature count is not the model's.
	CodeShapeMismatch Code = "shape_mismatch"
	// CodeTooLarge: the job's payload or row count is over the worker's limit.
	CodeTooLarge Code = "too_large"
	// CodeExpired: the job's deadline passed before it could run.
	CodeExpired Code = "expired"
	// CodeInternal: the worker failed; the job was retried and gave up.
	CodeInternal Code = "internal"
)

// Codes lists every error code.
var Codes = []Code{CodeBadRequest, CodeUnknownModel, CodeShapeMismatch, CodeTooLarge, CodeExpired, CodeInternal}

// Error is a job failure as carried in a Result. It implements error.
type Error struct {
	Code    Code   `json:"code" msgpack:"code"`
	Message string `json:"message" msgpack:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error: itself (or the *Error it wraps), or an
// internal error carrying its text.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
