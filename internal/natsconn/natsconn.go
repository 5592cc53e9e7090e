// Package natsconn turns Gearbox's NATS settings (server URLs, credentials,
// TLS) into nats.go connection options, and keeps secrets out of what it
// prints: URLs in errors and logs have their passwords and tokens redacted.
package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrInvalid is wrapped by Config.Options's errors.
var ErrInvalid = errors.New("natsconn: invalid settings")

// Config is how to reach and authenticate to NATS. At most one way to
// authenticate may be set besides TLS client certificates: Creds,
// User/Password, Token or NKeySeed (credentials in the URL count as User
// and Password, or Token).
type Config struct {
	// URL is one or more server URLs, comma-separated.
	URL string
	// Creds is a credentials file (a user JWT and its nkey seed).
	Creds string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// NKeySeed is a file holding a user nkey seed (SU...).
	NKeySeed string
	// CA is a PEM file of the certificate authorities that verify the
	// server (a private CA); Cert and Key are a PEM client certificate
	// and its key, for servers that verify clients (mutual TLS). Any of
	// them turns TLS on.
	CA, Cert, Key string
}

// Options returns the connection options for c: authentication and TLS.
// Files are checked for being readable now, so a wrong path fails at start
// with the setting's name rather than at the first connect.
func (c Config) Options() ([]nats.Option, error) {
	var opts []nats.Option
	methods := 0
	if c.Creds != "" {
		if err := readable("GEARBOX_NATS_CREDS", c.Creds); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(c.Creds))
		methods++
	}
	if c.User != "" || c.Password != "" {
		if c.User == "" || c.Password == "" {
			return nil, fmt.Errorf("%w: GEARBOX_NATS_USER and GEARBOX_NATS_PASSWORD go together", ErrInvalid)
		}
		opts = append(opts, nats.UserInfo(c.User, c.Password))
		methods++
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
		methods++
	}
	if c.NKeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("%w: GEARBOX_NATS_NKEY_SEED: %v", ErrInvalid, err)
		}
		opts = append(opts, opt)
		methods++
	}
	if methods > 1 {
		return nil, fmt.Errorf("%w: set one of GEARBOX_NATS_CREDS, GEARBOX_NATS_USER/PASSWORD, GEARBOX_NATS_TOKEN, GEARBOX_NATS_NKEY_SEED", ErrInvalid)
	}
	if c.CA != "" {
		if err := readable("GEARBOX_NATS_CA", c.CA); err != nil {
			return nil, err
		}
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, fmt.Errorf("%w: GEARBOX_NATS_CERT and GEARBOX_NATS_KEY go together", ErrInvalid)
	}
	if c.Cert != "" {
		for name, f := range map[string]string{"GEARBOX_NATS_CERT": c.Cert, "GEARBOX_NATS_KEY": c.Key} {
			if err := readable(name, f); err != nil {
				return nil, err
			}
		}
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	return opts, nil
}

func readable(setting, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, setting, err)
	}
	return f.Close()
}

// Connect connects to c.URL with c's options and opts. Its errors name the
// servers with their secrets redacted.
func (c Config) Connect(opts ...nats.Option) (*nats.Conn, error) {
	own, err := c.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.URL, append(own, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", Redact(c.URL), redactErr(err, c))
	}
	return nc, nil
}

// Redact returns urls (comma-separated) with the password, or a user part
// that is a token, of each replaced by "xxxxx".
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			if strings.Contains(p, "@") { // unparseable but may hold secrets
				p = "xxxxx@" + p[strings.LastIndexByte(p, '@')+1:]
			}
			parts[i] = p
			continue
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// redactErr removes c's secrets from err's text, should a library quote
// them.
func redactErr(err error, c Config) error {
	msg := err.Error()
	out := msg
	for _, s := range []string{c.Password, c.Token} {
		if len(s) >= 4 {
			out = strings.ReplaceAll(out, s, "xxxxx")
		}
	}
	if u := c.URL; u != "" && Redact(u) != u {
		out = strings.ReplaceAll(out, u, Redact(u))
	}
	if out == msg {
		return err
	}
	return redacted{msg: out, err: err}
}

// redacted is an error whose text had secrets removed; it still unwraps to
// the original for errors.Is.
type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }

// Retrying is the option set for long-lived processes: connect in the
// background when the server is not up yet, and reconnect forever.
func Retrying() []nats.Option {
	return []nats.Option{
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}
}
