package natsconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gearbox-inference/gearbox/internal/natsconn"
)

// start runs a real server with opts (a free loopback port) for the test.
func start(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// roundTrip proves the connection works: a message to itself.
func roundTrip(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.SubscribeSync("check")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("check", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuth connects with each way of authenticating against a server that
// demands it, and is refused with the wrong secret — with the secret in no
// error text.
func TestAuth(t *testing.T) {
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	seed, _ := ukp.Seed()
	cases := []struct {
		name   string
		server server.Options
		good   natsconn.Config
		bad    natsconn.Config
		secret string
	}{
		{"user and password", server.Options{Username: "gearbox", Password: "s3cret-pass"},
			natsconn.Config{User: "gearbox", Password: "s3cret-pass"}, natsconn.Config{User: "gearbox", Password: "wrong-pass"}, "wrong-pass"},
		{"token", server.Options{Authorization: "t0ken-value"},
			natsconn.Config{Token: "t0ken-value"}, natsconn.Config{Token: "wr0ng-token"}, "wr0ng-token"},
		{"nkey", server.Options{Nkeys: []*server.NkeyUser{{Nkey: upub}}},
			natsconn.Config{NKeySeed: writeFile(t, "user.nk", seed)}, natsconn.Config{NKeySeed: writeFile(t, "other.nk", otherSeed(t))}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, &c.server)
			good := c.good
			good.URL = s.ClientURL()
			nc, err := good.Connect()
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			roundTrip(t, nc)
			bad := c.bad
			bad.URL = s.ClientURL()
			if nc, err := bad.Connect(); err == nil {
				nc.Close()
				t.Fatal("connected with the wrong secret")
			} else if c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	t.Run("password in the URL", func(t *testing.T) {
		s := start(t, &server.Options{Username: "gearbox", Password: "url-s3cret"})
		u := strings.Replace(s.ClientURL(), "nats://", "nats://gearbox:wrong-url-s3cret@", 1)
		_, err := natsconn.Config{URL: u}.Connect()
		if err == nil || strings.Contains(err.Error(), "wrong-url-s3cret") || !strings.Contains(err.Error(), "gearbox:xxxxx@") {
			t.Errorf("err = %v; want a refusal naming the server with the password redacted", err)
		}
	})
}

func otherSeed(t *testing.T) []byte {
	kp, _ := nkeys.CreateUser()
	s, _ := kp.Seed()
	return s
}

// TestCreds connects with a credentials file (decentralised JWT auth: an
// operator, an account and a user).
func TestCreds(t *testing.T) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	if _, err := oc.Encode(okp); err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	ujwt, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	s := start(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver})
	nc, err := natsconn.Config{URL: s.ClientURL(), Creds: writeFile(t, "user.creds", creds)}.Connect()
	if err != nil {
		t.Fatalf("connect with creds: %v", err)
	}
	defer nc.Close()
	roundTrip(t, nc)
	if _, err := (natsconn.Config{URL: s.ClientURL()}).Connect(); err == nil {
		t.Error("connected without credentials")
	}
}

// pki is a private CA with a server and a client certificate, as files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gearbox test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return writeFile(t, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			writeFile(t, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	}
	p := pki{ca: writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestTLS connects to a server whose certificate a private CA signed, and
// to one that also demands a client certificate (mutual TLS).
func TestTLS(t *testing.T) {
	p := newPKI(t)
	for _, mutual := range []bool{false, true} {
		name := map[bool]string{false: "private CA", true: "mutual TLS"}[mutual]
		t.Run(name, func(t *testing.T) {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p.serverCert, KeyFile: p.serverKey, CaFile: p.ca, Verify: mutual})
			if err != nil {
				t.Fatal(err)
			}
			s := start(t, &server.Options{TLS: true, TLSVerify: mutual, TLSConfig: tc, TLSTimeout: 5})
			url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
			cfg := natsconn.Config{URL: url, CA: p.ca}
			if mutual {
				if nc, err := cfg.Connect(); err == nil {
					nc.Close()
					t.Fatal("connected without a client certificate")
				}
				cfg.Cert, cfg.Key = p.clientCert, p.clientKey
			}
			nc, err := cfg.Connect()
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			roundTrip(t, nc)
			if !mutual {
				if nc, err := (natsconn.Config{URL: url}).Connect(); err == nil {
					nc.Close()
					t.Error("connected without the private CA: the server certificate went unverified")
				}
			}
		})
	}
}

// TestOptionsChecked: settings that cannot work fail at start, naming the
// setting.
func TestOptionsChecked(t *testing.T) {
	cases := []struct {
		cfg  natsconn.Config
		want string
	}{
		{natsconn.Config{User: "u"}, "GEARBOX_NATS_USER and GEARBOX_NATS_PASSWORD"},
		{natsconn.Config{Token: "t", User: "u", Password: "p"}, "set one of"},
		{natsconn.Config{Cert: "c.pem"}, "GEARBOX_NATS_CERT and GEARBOX_NATS_KEY"},
		{natsconn.Config{CA: "/nonexistent/ca.pem"}, "GEARBOX_NATS_CA"},
		{natsconn.Config{Creds: "/nonexistent/u.creds"}, "GEARBOX_NATS_CREDS"},
		{natsconn.Config{NKeySeed: "/nonexistent/u.nk"}, "GEARBOX_NATS_NKEY_SEED"},
	}
	for _, c := range cases {
		_, err := c.cfg.Options()
		if !errors.Is(err, natsconn.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v; want ErrInvalid naming %q", c.cfg, err, c.want)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"nats://host:4222":                         "nats://host:4222",
		"nats://user:pass@host:4222":               "nats://user:xxxxx@host:4222",
		"nats://s3cr3tt0ken@host:4222":             "nats://xxxxx@host:4222",
		"nats://a:b@h1:4222, tls://c:d@h2:4222":    "nats://a:xxxxx@h1:4222,tls://c:xxxxx@h2:4222",
		"host:4222":                                "host:4222",
		"nats://us er:p%zz@host":                   "xxxxx@host",
		"nats://user:pass@host:4222/?x=1#fragment": "nats://user:xxxxx@host:4222/?x=1#fragment",
	}
	for in, want := range cases {
		if got := natsconn.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q; want %q", in, got, want)
		}
	}
}
