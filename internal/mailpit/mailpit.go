// Package mailpit runs the mailpit SMTP server (github.com/axllent/mailpit)
// for tests: a real mail server, with STARTTLS when asked, whose REST API
// shows what arrived. .ci/run installs it and exports its path in
// GATEHOUSE_MAILPIT.
package mailpit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/gatehouse-dev/gatehouse/internal/testbin"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Mailpit is the SMTP server the tests run against (GATEHOUSE_MAILPIT in
// CI).
func Mailpit() testbin.Program {
	return testbin.Program{Name: "mailpit", Package: "github.com/axllent/mailpit",
		Version: "v1.33.1", Binary: "mailpit", Env: "GATEHOUSE_MAILPIT"}
}

// Find returns the mailpit binary's path (see testbin.Program.Find).
func Find(t testing.TB) string { t.Helper(); return Mailpit().Find(t) }

// Server is a running mailpit.
type Server struct {
	SMTPAddr string // host:port
	APIURL   string // http://host:port
	// CAFile is the PEM certificate mailpit presents on STARTTLS (self-signed
	// for 127.0.0.1); empty without TLS.
	CAFile string
}

// Options choose how mailpit runs.
type Options struct {
	// RequireSTARTTLS gives mailpit a certificate and makes it refuse mail
	// from clients that do not STARTTLS first.
	RequireSTARTTLS bool
	// SMTPUsers, when set, are the only username/password pairs mailpit
	// accepts, and it then requires SMTP AUTH.
	SMTPUsers map[string]string
}

// Start runs mailpit on loopback ports until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Find(t)
	dir := t.TempDir()
	s := &Server{SMTPAddr: freeAddr(t)}
	web := freeAddr(t)
	s.APIURL = "http://" + web
	args := []string{"--smtp", s.SMTPAddr, "--listen", web, "--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns", "--quiet"}
	if opts.RequireSTARTTLS {
		cert, key := selfSigned(t, dir)
		s.CAFile = cert
		args = append(args, "--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls")
	}
	if len(opts.SMTPUsers) > 0 {
		var b strings.Builder
		for u, p := range opts.SMTPUsers {
			sum := sha1.Sum([]byte(p)) // htpasswd's {SHA} scheme, which mailpit reads
			fmt.Fprintf(&b, "%s:{SHA}%s\n", u, base64.StdEncoding.EncodeToString(sum[:]))
		}
		file := filepath.Join(dir, "smtp-users")
		if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--smtp-auth-file", file)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("mailpit output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.SMTPAddr, time.Second)
		if err == nil {
			c.Close()
			if _, err = s.list(context.Background()); err == nil {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("mailpit exited before it was ready: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit not ready at %s / %s: %v", s.SMTPAddr, s.APIURL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Message is one mail as mailpit's API describes it.
type Message struct {
	ID      string
	From    string
	To      []string
	Subject string
	Text    string              // the plain-text body
	Headers map[string][]string // as parsed by mailpit
}

type address struct {
	Address string `json:"Address"`
}

func (s *Server) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.APIURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

func (s *Server) list(ctx context.Context) ([]Message, error) {
	var page struct {
		Messages []struct {
			ID      string    `json:"ID"`
			From    address   `json:"From"`
			To      []address `json:"To"`
			Subject string    `json:"Subject"`
		} `json:"messages"`
	}
	if err := s.getJSON(ctx, "/api/v1/messages", &page); err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(page.Messages))
	for _, m := range page.Messages {
		msg := Message{ID: m.ID, From: m.From.Address, Subject: m.Subject}
		for _, a := range m.To {
			msg.To = append(msg.To, a.Address)
		}
		out = append(out, msg)
	}
	return out, nil
}

// Messages returns every message received so far, with body and headers.
func (s *Server) Messages(ctx context.Context) ([]Message, error) {
	msgs, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		var full struct {
			Text string `json:"Text"`
		}
		if err := s.getJSON(ctx, "/api/v1/message/"+msgs[i].ID, &full); err != nil {
			return nil, err
		}
		msgs[i].Text = full.Text
		if err := s.getJSON(ctx, "/api/v1/message/"+msgs[i].ID+"/headers", &msgs[i].Headers); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// WaitFor polls until match accepts a message, and returns it.
func (s *Server) WaitFor(t testing.TB, what string, match func(Message) bool) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last []Message
	for {
		msgs, err := s.Messages(ctx)
		if err == nil {
			last = msgs
			for _, m := range msgs {
				if match(m) {
					return m
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no mail %s arrived at mailpit; it has %d: %+v (last error %v)", what, len(last), last, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// selfSigned writes a certificate for 127.0.0.1 that is its own CA, so
// the client trusts exactly it through ca_file.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mailpit test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "smtp.crt"), filepath.Join(dir, "smtp.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
