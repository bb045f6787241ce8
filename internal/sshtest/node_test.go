package sshtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// certSigner signs a fresh key's user certificate with ca; edit may change
// the certificate before it is signed.
func certSigner(t *testing.T, ca ssh.Signer, principals []string, edit func(*ssh.Certificate)) ssh.Signer {
	t.Helper()
	key := NewSigner(t)
	c := &ssh.Certificate{Key: key.PublicKey(), CertType: ssh.UserCert, KeyId: "test", ValidPrincipals: principals,
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if edit != nil {
		edit(c)
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewCertSigner(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dial(n *Node, login string, s ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", n.Addr, &ssh.ClientConfig{User: login, Auth: []ssh.AuthMethod{ssh.PublicKeys(s)},
		HostKeyCallback: ssh.FixedHostKey(n.HostKey), HostKeyAlgorithms: []string{ssh.KeyAlgoED25519}, Timeout: 10 * time.Second})
}

// The node admits what sshd with TrustedUserCAKeys admits, and nothing
// else.
func TestNodeChecksCertificatesLikeSshd(t *testing.T) {
	ca, other := NewSigner(t), NewSigner(t)
	n := Start(t, Options{UserCA: ca.PublicKey(), Logins: []string{"ubuntu", "deploy"}})
	tests := []struct {
		name   string
		login  string
		signer ssh.Signer
		ok     bool
	}{
		{"principal is the login", "ubuntu", certSigner(t, ca, []string{"ubuntu"}, nil), true},
		{"one of several principals", "deploy", certSigner(t, ca, []string{"ubuntu", "deploy"}, nil), true},
		{"login not among the principals", "root", certSigner(t, ca, []string{"ubuntu"}, nil), false},
		{"principal without an account", "root", certSigner(t, ca, []string{"root"}, nil), false},
		{"untrusted CA", "ubuntu", certSigner(t, other, []string{"ubuntu"}, nil), false},
		{"plain key", "ubuntu", NewSigner(t), false},
		{"expired", "ubuntu", certSigner(t, ca, []string{"ubuntu"}, func(c *ssh.Certificate) {
			c.ValidBefore = uint64(time.Now().Add(-time.Second).Unix())
		}), false},
		{"source-address elsewhere", "ubuntu", certSigner(t, ca, []string{"ubuntu"}, func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "192.0.2.0/24"}
		}), false},
		{"source-address here", "ubuntu", certSigner(t, ca, []string{"ubuntu"}, func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "127.0.0.1/32"}
		}), true},
		{"unknown critical option", "ubuntu", certSigner(t, ca, []string{"ubuntu"}, func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"force-command": "true"}
		}), false},
	}
	accepted := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(n, tc.login, tc.signer)
			if (err == nil) != tc.ok {
				t.Fatalf("login %s: err %v, want ok=%v", tc.login, err, tc.ok)
			}
			if err == nil {
				accepted++
				c.Close()
			}
		})
	}
	// The node records a login once its side of the handshake is done,
	// which may be after the client's.
	logins := n.Logins()
	for deadline := time.Now().Add(5 * time.Second); len(logins) < accepted && time.Now().Before(deadline); logins = n.Logins() {
		time.Sleep(5 * time.Millisecond)
	}
	users := map[string]int{}
	for _, l := range logins {
		users[l.User]++
		if l.KeyID != "test" || !slices.Contains(l.Principals, l.User) {
			t.Errorf("recorded login %+v", l)
		}
	}
	if len(logins) != accepted || users["ubuntu"] != 2 || users["deploy"] != 1 {
		t.Errorf("recorded logins %+v, want the %d accepted", logins, accepted)
	}
}

func TestNodeRunsBuiltinCommands(t *testing.T) {
	ca := NewSigner(t)
	n := Start(t, Options{UserCA: ca.PublicKey()})
	c, err := dial(n, "ubuntu", certSigner(t, ca, []string{"ubuntu"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := func(cmd, stdin string) (string, error) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Stdin = strings.NewReader(stdin)
		out, err := s.CombinedOutput(cmd)
		return string(out), err
	}
	for _, tc := range []struct{ cmd, stdin, want string }{
		{"echo hello world", "", "hello world\n"},
		{"id -un", "", "ubuntu\n"},
		{"cat", "piped\n", "piped\n"},
		{"echo up; exec sleep 0.01; echo down", "", "up\ndown\n"},
	} {
		if got, err := run(tc.cmd, tc.stdin); err != nil || got != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.cmd, got, err, tc.want)
		}
	}
	if _, err := run("exit 3", ""); err == nil || err.(*ssh.ExitError).ExitStatus() != 3 {
		t.Errorf("exit 3: %v", err)
	}
	if out, err := run("rm -rf /", ""); err == nil || !strings.Contains(out, "command not found") {
		t.Errorf("unknown command: %q %v", out, err)
	}
}

func TestNodeShellEchoesOnAPty(t *testing.T) {
	ca := NewSigner(t)
	n := Start(t, Options{UserCA: ca.PublicKey()})
	c, err := dial(n, "ubuntu", certSigner(t, ca, []string{"ubuntu"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 24, 80, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.Stdout = &out
	s.Stdin = strings.NewReader("hello\r\x04")
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil || out.String() != "hello\r\n" {
		t.Fatalf("shell: %q %v", out.String(), err)
	}
}

func TestSleepEndsWithTheSession(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code := Run(ctx, "ubuntu", "sleep 60", nil, nil, nil); code != 130 {
		t.Fatalf("sleep after cancel: %d", code)
	}
}
