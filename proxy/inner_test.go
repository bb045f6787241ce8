package proxy

import (
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
)

// innerHandshake runs one inner-hop handshake in memory: cfg on the server
// side, ccfg on the client side. It returns what the server recorded.
func innerHandshake(t *testing.T, cfg *ssh.ServerConfig, ccfg *ssh.ClientConfig) (innerAuth, error) {
	t.Helper()
	cfg.AddHostKey(sshtest.NewSigner(t))
	b, a := sshtest.Loopback(t)
	defer a.Close()
	defer b.Close()
	type result struct {
		auth innerAuth
		err  error
	}
	srv := make(chan result, 1)
	go func() {
		conn, chans, reqs, err := ssh.NewServerConn(a, cfg)
		if err != nil {
			srv <- result{err: err}
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				_ = nc.Reject(ssh.Prohibited, "test")
			}
		}()
		srv <- result{auth: innerAuthOf(conn)}
		_ = conn.Wait()
	}()
	ccfg.HostKeyCallback = ssh.InsecureIgnoreHostKey() // the host key is not under test here
	ccfg.Timeout = 10 * time.Second
	c, chans, reqs, err := ssh.NewClientConn(b, "web-1:22", ccfg)
	if err != nil {
		b.Close()
		<-srv
		return innerAuth{}, err
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	select {
	case r := <-srv:
		return r.auth, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("server side of the handshake did not finish")
		return innerAuth{}, nil
	}
}

// The inner hop accepts the first method any client tries and never asks
// anything. x/crypto's client always tries "none" first, so to make it use
// each other method alone the test turns "none" off on a copy of the
// config; everything else is the config serveInner uses.
func TestInnerHopAcceptsWhateverMethodComesFirst(t *testing.T) {
	key := sshtest.NewSigner(t)
	certKey := sshtest.NewSigner(t)
	cert := &ssh.Certificate{Key: certKey.PublicKey(), CertType: ssh.UserCert, ValidPrincipals: []string{"someone-else"},
		ValidBefore: ssh.CertTimeInfinity}
	// Signed by a key nobody trusts: the inner hop must not care.
	if err := cert.SignCert(rand.Reader, sshtest.NewSigner(t)); err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, certKey)
	if err != nil {
		t.Fatal(err)
	}
	var questions atomic.Int32
	kbd := ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
		questions.Add(int32(len(qs)))
		return make([]string, len(qs)), nil
	})

	tests := []struct {
		name      string
		noNone    bool
		auth      []ssh.AuthMethod
		want      string
		wantKeyFP string
	}{
		{"none", false, nil, "none", ""},
		{"publickey", true, []ssh.AuthMethod{ssh.PublicKeys(key)}, "publickey", ssh.FingerprintSHA256(key.PublicKey())},
		{"publickey certificate from an unknown CA", true, []ssh.AuthMethod{ssh.PublicKeys(certSigner)}, "publickey", ssh.FingerprintSHA256(certKey.PublicKey())},
		{"keyboard-interactive", true, []ssh.AuthMethod{kbd}, "keyboard-interactive", ""},
		{"password", true, []ssh.AuthMethod{ssh.Password("ignored")}, "password", ""},
		{"none wins over offered methods", false, []ssh.AuthMethod{ssh.PublicKeys(key), ssh.Password("x")}, "none", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := innerServerConfig()
			if tc.noNone {
				cfg.NoClientAuth = false
			}
			got, err := innerHandshake(t, cfg, &ssh.ClientConfig{User: "ubuntu", Auth: tc.auth})
			if err != nil {
				t.Fatalf("inner handshake: %v", err)
			}
			if got.method != tc.want || got.keyFP != tc.wantKeyFP {
				t.Fatalf("recorded %+v, want method %q key %q", got, tc.want, tc.wantKeyFP)
			}
		})
	}
	if n := questions.Load(); n != 0 {
		t.Errorf("keyboard-interactive asked %d questions; the inner hop must never prompt", n)
	}
}

// The inner Permissions name a method and a key, never a user: serveInner
// takes the identity from the outer connection alone.
func TestInnerPermissionsCarryNoIdentity(t *testing.T) {
	cfg := innerServerConfig()
	perms := []*ssh.Permissions{}
	p, _ := cfg.NoClientAuthCallback(nil)
	perms = append(perms, p)
	p, _ = cfg.PublicKeyCallback(nil, sshtest.NewSigner(t).PublicKey())
	perms = append(perms, p)
	p, _ = cfg.PasswordCallback(nil, []byte("root"))
	perms = append(perms, p)
	p, _ = cfg.KeyboardInteractiveCallback(nil, func(string, string, []string, []bool) ([]string, error) {
		t.Fatal("keyboard-interactive challenge called")
		return nil, nil
	})
	perms = append(perms, p)
	for _, p := range perms {
		if len(p.CriticalOptions) != 0 {
			t.Errorf("critical options on inner Permissions: %v", p.CriticalOptions)
		}
		for k := range p.Extensions {
			if k != extInnerMethod && k != extInnerKeyFP {
				t.Errorf("inner Permissions carry %q; only the method and key fingerprint belong there", k)
			}
		}
		if _, ok := identityOf(&ssh.ServerConn{Permissions: p}); ok {
			t.Errorf("inner Permissions %v read as an identity", p.Extensions)
		}
	}
}
