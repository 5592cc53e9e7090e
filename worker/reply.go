package worker

import (
	"fmt"
	"strings"

	"github.com/gearbox-inference/gearbox"
)

// DefaultReplyPrefixes are where replies may go unless configured: the
// inboxes NATS clients make for request/reply (nats.go's NewInbox,
// Client.Do).
var DefaultReplyPrefixes = []string{"_INBOX."}

// replyPolicy decides where a job's reply_to may point. A worker publishes
// with its own credentials, so reply_to is a producer's way to make it
// publish: it may only reach subjects an operator allowed, and never the
// system's ($JS. API calls such as stream purges, $KV. and $O. buckets,
// $SYS.) or Gearbox's own (results, jobs, quality, dead letters).
type replyPolicy struct {
	prefixes []string // each ends with '.'
	own      string   // the deployment's prefix, with a trailing '.'
}

// newReplyPolicy checks the configured prefixes: each a subject prefix of
// whole tokens that cannot reach a system or Gearbox subject.
func newReplyPolicy(prefixes []string, s gearbox.Subjects) (replyPolicy, error) {
	p := replyPolicy{own: s.Prefix + "."}
	for _, pre := range prefixes {
		if !strings.HasSuffix(pre, ".") {
			pre += "." // whole tokens: "replies" must not allow "repliesX"
		}
		if err := gearbox.ValidSubject(strings.TrimSuffix(pre, ".")); err != nil {
			return replyPolicy{}, fmt.Errorf("%w: reply prefix %q: %v", ErrInvalidConfig, pre, err)
		}
		if strings.HasPrefix(pre, "$") || strings.HasPrefix(pre, p.own) || strings.HasPrefix(p.own, pre) {
			return replyPolicy{}, fmt.Errorf("%w: reply prefix %q would let jobs publish to system or Gearbox subjects", ErrInvalidConfig, pre)
		}
		p.prefixes = append(p.prefixes, pre)
	}
	return p, nil
}

// check returns a bad_request *Error when subject is not an allowed reply
// address.
func (p replyPolicy) check(subject string) *gearbox.Error {
	if !strings.HasPrefix(subject, "$") && !strings.HasPrefix(subject, p.own) {
		for _, pre := range p.prefixes {
			if strings.HasPrefix(subject, pre) && len(subject) > len(pre) {
				return nil
			}
		}
	}
	if len(p.prefixes) == 0 {
		return gearbox.Errorf(gearbox.CodeBadRequest, "reply_to %q is not allowed: this worker sends no replies (GEARBOX_REPLY_PREFIXES is empty); read the result stream", subject)
	}
	return gearbox.Errorf(gearbox.CodeBadRequest, "reply_to %q is not allowed: replies go only to subjects under %s (GEARBOX_REPLY_PREFIXES)", subject, strings.Join(p.prefixes, ", "))
}
