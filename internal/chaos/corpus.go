package chaos

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
)

// Case is one crafted job of the hostile corpus (testdata/hostile): what a
// hostile or careless producer publishes, and how the fleet must answer it.
type Case struct {
	// Name names the case and its payload file, payloads/<name>.gz.
	Name string `json:"name"`
	// Why says which defect class of issue 9 the case belongs to, and what
	// such a job once did.
	Why string `json:"why"`
	// Subject is where it is published; Header are its headers.
	Subject string              `json:"subject"`
	Header  map[string][]string `json:"header,omitempty"`
	// Expect is the outcome the fleet must give it.
	Expect Expect `json:"expect"`

	// Payload is the job's bytes (from payloads/<name>.gz).
	Payload []byte `json:"-"`
}

// Expect is how a corpus job must end.
type Expect struct {
	// Refused: no stream stores the publish (it fails), so no worker ever
	// sees the job.
	Refused bool `json:"refused,omitempty"`
	// Code is the result's error code ("" for a successful result) and
	// Message a part of its error message.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// ID is the result's id: "" when the job's id is unusable, and the
	// result then goes under the Nats-Msg-Id gearbox-seq-<stream sequence>.
	ID string `json:"id,omitempty"`
	// Token is the model token of the result's (and dead letter's)
	// subject: the job subject's, or _invalid when that is not a model
	// name.
	Token string `json:"token,omitempty"`
	// Dead: a dead letter with the same code is stored too.
	Dead bool `json:"dead,omitempty"`
	// Reply: the result is also sent to the job's reply_to (an inbox).
	Reply bool `json:"reply,omitempty"`
}

// Msg is the case as a message to publish.
func (c *Case) Msg() *nats.Msg {
	m := nats.NewMsg(c.Subject)
	for k, v := range c.Header {
		m.Header[k] = append([]string(nil), v...)
	}
	m.Data = c.Payload
	return m
}

// maxCorpusPayload bounds a decompressed corpus payload.
const maxCorpusPayload = 32 << 20

// LoadCorpus reads the cases of dir/cases.json and their payloads.
func LoadCorpus(dir string) ([]*Case, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		return nil, fmt.Errorf("chaos: corpus: %w", err)
	}
	var cases []*Case
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, fmt.Errorf("chaos: corpus %s: %w", filepath.Join(dir, "cases.json"), err)
	}
	for _, c := range cases {
		if c.Payload, err = readGzip(filepath.Join(dir, "payloads", c.Name+".gz")); err != nil {
			return nil, fmt.Errorf("chaos: corpus case %s: %w", c.Name, err)
		}
	}
	return cases, nil
}

func readGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(z, maxCorpusPayload+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCorpusPayload {
		return nil, fmt.Errorf("payload is over %d bytes", maxCorpusPayload)
	}
	return data, nil
}
