package gearbox

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Client publishes jobs and reads results. It is safe for concurrent use.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	subj Subjects
	enc  Encoding
}

// ClientOption configures a Client.
type ClientOption func(*Client) error

// WithPrefix sets the deployment's subject prefix (default "gearbox").
func WithPrefix(prefix string) ClientOption {
	return func(c *Client) error {
		s, err := NewSubjects(prefix)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidOption, err)
		}
		c.subj = s
		return nil
	}
}

// WithEncoding sets the encoding of submitted jobs (default Msgpack); the
// results of a job come back in the same encoding.
func WithEncoding(e Encoding) ClientOption {
	return func(c *Client) error {
		if e != Msgpack && e != JSON {
			return fmt.Errorf("%w: encoding %d", ErrInvalidOption, e)
		}
		c.enc = e
		return nil
	}
}

// NewClient returns a client on nc.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	c := &Client{nc: nc, js: js, subj: DefaultSubjects}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Subjects returns the client's subject names.
func (c *Client) Subjects() Subjects { return c.subj }

// JetStream returns the client's JetStream context.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Provision creates or updates the streams and the shared consumer; workers
// do this at start, so producers need it only to publish before any worker
// has run.
func (c *Client) Provision(ctx context.Context, cfg StreamsConfig) error {
	return Provision(ctx, c.js, c.subj, cfg)
}

func (c *Client) jobMsg(j *Job) (*nats.Msg, error) {
	if err := j.Validate(); err != nil {
		return nil, err
	}
	m, err := NewMsg(c.subj.Jobs(j.Model), j, c.enc)
	if err != nil {
		return nil, err
	}
	m.Header.Set(jetstream.MsgIDHeader, j.ID)
	return m, nil
}

// Submit validates j and publishes it to its model's job subject with
// Nats-Msg-Id set to its id, waiting for the stream's acknowledgement. A
// job already published within the stream's duplicate window is
// acknowledged with PubAck.Duplicate set and not queued again. A full job
// stream fails the publish (backpressure): retry later.
func (c *Client) Submit(ctx context.Context, j *Job) (*jetstream.PubAck, error) {
	m, err := c.jobMsg(j)
	if err != nil {
		return nil, err
	}
	return c.js.PublishMsg(ctx, m)
}

// SubmitAsync is Submit without waiting: the future reports the stream's
// acknowledgement. Use the JetStream context's PublishAsyncComplete to wait
// for all of them.
func (c *Client) SubmitAsync(j *Job) (jetstream.PubAckFuture, error) {
	m, err := c.jobMsg(j)
	if err != nil {
		return nil, err
	}
	return c.js.PublishMsgAsync(m)
}

// Do submits j with reply_to set to a fresh inbox and waits for its result
// (until ctx ends). The result is also in the result stream as usual. A
// result carrying an error is returned with a nil error: check Result.Error.
func (c *Client) Do(ctx context.Context, j *Job) (*Result, error) {
	jj := *j
	jj.ReplyTo = c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(jj.ReplyTo)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if _, err := c.Submit(ctx, &jj); err != nil {
		return nil, err
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return DecodeResult(m.Data, EncodingOf(m.Header))
}

// Results yields the results of model ("*" for every model) as they are
// stored: from the start of the result stream when fromStart is true, else
// only new ones. It ends when ctx ends (without an error) or on a failure.
// Each follower keeps up to the server's largest message (at least 4 MiB)
// of pulled results in flight on c's connection; a server holds 64 MB for
// a connection by default, so followers of a server with a larger
// max_payload want connections of their own.
func (c *Client) Results(ctx context.Context, model string, fromStart bool) iter.Seq2[*Result, error] {
	return follow(ctx, c.js, c.subj.ResultsStream(), c.subj.Results(model), fromStart, DecodeResult)
}

// QualityReports yields the quality reports of model ("*" for every
// model), like Results.
func (c *Client) QualityReports(ctx context.Context, model string, fromStart bool) iter.Seq2[*QualityReport, error] {
	return follow(ctx, c.js, c.subj.QualityStream(), c.subj.Quality(model), fromStart, DecodeQualityReport)
}

// follow yields the decoded messages of subject in stream through an
// ordered consumer.
func follow[T any](ctx context.Context, js jetstream.JetStream, stream, subject string, fromStart bool, decode func([]byte, Encoding) (*T, error)) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		pol := jetstream.DeliverNewPolicy
		if fromStart {
			pol = jetstream.DeliverAllPolicy
		}
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subject},
			DeliverPolicy:  pol,
		})
		if err != nil {
			yield(nil, fmt.Errorf("follow %s: %w", subject, err))
			return
		}
		// A follower's pulls keep at most followPullBytes in flight: with
		// the default (500 messages) four followers of 64 KiB results on
		// one connection asked for ~128 MB at once, more than the server
		// holds for one connection (64 MB by default), and they stalled
		// for seconds at a time (bench e2e --raw-streams, docs/benchmarks.md).
		it, err := cons.Messages(jetstream.PullMaxBytes(followPullBytes(js.Conn())))
		if err != nil {
			yield(nil, err)
			return
		}
		defer it.Stop()
		stop := context.AfterFunc(ctx, it.Stop)
		defer stop()
		for {
			m, err := it.Next()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				yield(nil, err)
				return
			}
			if !yield(decode(m.Data(), EncodingOf(m.Headers()))) {
				return
			}
		}
	}
}

// followPullBytes is what a follower's pulls keep in flight: the largest
// message nc's server takes (a pull of fewer bytes than a message could
// never deliver it), at least 4 MiB — 8 MiB with the embedded server, so a
// connection carries several followers within the server's 64 MB.
func followPullBytes(nc *nats.Conn) int {
	return max(4<<20, int(nc.MaxPayload()))
}
