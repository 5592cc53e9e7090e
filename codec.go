package gearbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"
)

// Header names and values of the wire contract.
const (
	// HeaderContentType selects the encoding of a job, result or report.
	HeaderContentType = "Content-Type"
	// ContentJSON is the HeaderContentType value for JSON.
	ContentJSON = "application/json"
	// ContentMsgpack is the HeaderContentType value for msgpack, the
	// default when the header is absent.
	ContentMsgpack = "application/msgpack"
	// HeaderErrorCode and HeaderError carry a dead letter's reason.
	HeaderErrorCode = "Gearbox-Error-Code"
	HeaderError     = "Gearbox-Error"
)

// Encoding is a wire encoding: msgpack (the default) or JSON.
type Encoding int

// The encodings.
const (
	Msgpack Encoding = iota
	JSON
)

// EncodingOf returns the encoding a message's headers select: JSON when
// Content-Type is application/json (parameters such as charset allowed),
// else msgpack.
func EncodingOf(h nats.Header) Encoding {
	ct := h.Get(HeaderContentType)
	if ct == "" {
		return Msgpack
	}
	mt, _, _ := strings.Cut(ct, ";")
	if strings.EqualFold(strings.TrimSpace(mt), ContentJSON) {
		return JSON
	}
	return Msgpack
}

// ParseEncoding returns the encoding a job's headers select: msgpack when
// Content-Type is absent or application/msgpack (or application/x-msgpack),
// JSON for application/json (parameters such as charset allowed, names in
// any case). Any other Content-Type is a bad_request *Error, returned with
// Msgpack, the encoding its error result is written in.
func ParseEncoding(h nats.Header) (Encoding, error) {
	ct := h.Get(HeaderContentType)
	if ct == "" {
		return Msgpack, nil
	}
	mt, _, _ := strings.Cut(ct, ";")
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case ContentJSON:
		return JSON, nil
	case ContentMsgpack, "application/x-msgpack":
		return Msgpack, nil
	}
	return Msgpack, Errorf(CodeBadRequest, "Content-Type %s is not %s or %s", echo(ct), ContentJSON, ContentMsgpack)
}

// ContentType is the HeaderContentType value of e.
func (e Encoding) ContentType() string {
	if e == JSON {
		return ContentJSON
	}
	return ContentMsgpack
}

func (e Encoding) String() string {
	if e == JSON {
		return "json"
	}
	return "msgpack"
}

// Marshal encodes v (a Job, Result or other wire value) in e.
func (e Encoding) Marshal(v any) ([]byte, error) {
	if e == JSON {
		return json.Marshal(v)
	}
	return msgpack.Marshal(v)
}

// Unmarshal decodes data in e into v. Unknown fields are ignored, so later
// additive versions of the contract stay readable. Msgpack nested deeper than
// MaxDepth, or declaring more elements than it has bytes, is an error.
func (e Encoding) Unmarshal(data []byte, v any) error {
	if e == JSON {
		d := json.NewDecoder(bytes.NewReader(data))
		if err := d.Decode(v); err != nil {
			return err
		}
		if d.More() {
			return fmt.Errorf("trailing data after the JSON value")
		}
		return nil
	}
	// The msgpack library sizes slices by what a payload declares: check
	// first that every declared length fits in the payload.
	if err := scanMsgpack(data, MaxDepth); err != nil {
		return err
	}
	return msgpack.Unmarshal(data, v)
}

// DecodeResult decodes a result.
func DecodeResult(data []byte, e Encoding) (*Result, error) {
	var r Result
	if err := e.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("malformed %s result: %w", e, err)
	}
	return &r, nil
}

// NewMsg returns a message for subject carrying v encoded in e, with the
// Content-Type header set.
func NewMsg(subject string, v any, e Encoding) (*nats.Msg, error) {
	data, err := e.Marshal(v)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderContentType, e.ContentType())
	return m, nil
}
