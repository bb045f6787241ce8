package ca

import (
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
)

// signRaw signs c with signer without x/crypto's checks (it refuses to
// sign a certificate without principals, which another tool would sign).
func signRaw(t *testing.T, c *ssh.Certificate, signer ssh.Signer) {
	t.Helper()
	c.Nonce = make([]byte, 32)
	_, _ = rand.Read(c.Nonce)
	c.SignatureKey = signer.PublicKey()
	c.Signature = nil
	b := c.Marshal()
	// The signed bytes are the certificate up to its signature: the
	// encoding ends with an empty signature string's length.
	sig, err := signer.Sign(rand.Reader, b[:len(b)-4])
	if err != nil {
		t.Fatal(err)
	}
	c.Signature = sig
}

func TestCheckUserCert(t *testing.T) {
	a, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := sshtest.NewSigner(t).PublicKey()
	now := time.Now()
	at := func(d time.Duration) uint64 { return uint64(now.Add(d).Unix()) }
	cert := func(edit func(*ssh.Certificate)) *ssh.Certificate {
		c := &ssh.Certificate{Key: key, CertType: ssh.UserCert, KeyId: "test", ValidPrincipals: []string{"bob"},
			ValidAfter: at(-time.Minute), ValidBefore: at(time.Hour)}
		if edit != nil {
			edit(c)
		}
		signRaw(t, c, a.userCA)
		return c
	}
	tests := []struct {
		name string
		key  ssh.PublicKey
		user string
		err  string // "" for accepted
	}{
		{"valid", cert(nil), "bob", ""},
		{"one of several principals", cert(func(c *ssh.Certificate) { c.ValidPrincipals = []string{"alice", "bob"} }), "bob", ""},
		{"no expiry", cert(func(c *ssh.Certificate) { c.ValidBefore = ssh.CertTimeInfinity }), "bob", ""},
		{"source-address is checked later", cert(func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8"}
		}), "bob", ""},
		{"signed by SignUser", func() ssh.PublicKey {
			c, err := a.SignUser(UserCert{Key: key, Principals: []string{"bob"}, KeyID: "x", TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}(), "bob", ""},
		{"expired", cert(func(c *ssh.Certificate) { c.ValidBefore = at(-time.Second) }), "bob", "expired"},
		{"not yet valid", cert(func(c *ssh.Certificate) { c.ValidAfter = at(time.Hour) }), "bob", "not yet valid"},
		{"wrong principal", cert(nil), "alice", "not in the set of valid principals"},
		{"no principals", cert(func(c *ssh.Certificate) { c.ValidPrincipals = nil }), "bob", "not in the set of valid principals"},
		{"unknown critical option", cert(func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"force-command": "/bin/true"}
		}), "bob", "unsupported critical option"},
		{"host certificate", cert(func(c *ssh.Certificate) { c.CertType = ssh.HostCert }), "bob", "not a user certificate"},
		{"plain key", key, "bob", "not a certificate"},
		{"signed by another CA", func() ssh.PublicKey {
			c := &ssh.Certificate{Key: key, CertType: ssh.UserCert, ValidPrincipals: []string{"bob"}, ValidAfter: at(-time.Minute), ValidBefore: at(time.Hour)}
			signRaw(t, c, sshtest.NewSigner(t))
			return c
		}(), "bob", "unknown authority"},
		{"signed by the host CA", func() ssh.PublicKey {
			c := &ssh.Certificate{Key: key, CertType: ssh.UserCert, ValidPrincipals: []string{"bob"}, ValidAfter: at(-time.Minute), ValidBefore: at(time.Hour)}
			signRaw(t, c, a.hostCA)
			return c
		}(), "bob", "unknown authority"},
		{"altered after signing", func() ssh.PublicKey {
			c := cert(nil)
			c.ValidPrincipals = []string{"root"}
			return c
		}(), "root", "signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.CheckUserCert(tc.key, tc.user)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err == "" && got == nil:
				t.Fatal("accepted without the certificate")
			case tc.err != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Fatalf("error %q, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestCheckSourceAddress(t *testing.T) {
	withSource := func(v string) *ssh.Certificate {
		c := &ssh.Certificate{}
		if v != "" {
			c.CriticalOptions = map[string]string{"source-address": v}
		}
		return c
	}
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }
	tests := []struct {
		name   string
		option string
		remote net.Addr
		ok     bool
	}{
		{"no option", "", tcp("192.0.2.1"), true},
		{"exact address", "192.0.2.1", tcp("192.0.2.1"), true},
		{"other address", "192.0.2.1", tcp("192.0.2.2"), false},
		{"inside a CIDR", "10.0.0.0/8", tcp("10.1.2.3"), true},
		{"outside a CIDR", "10.0.0.0/8", tcp("11.0.0.1"), false},
		{"second entry of a list", "192.0.2.1,10.0.0.0/8", tcp("10.9.9.9"), true},
		{"none of a list", "192.0.2.1,10.0.0.0/8", tcp("172.16.0.1"), false},
		{"IPv6 CIDR", "2001:db8::/32", tcp("2001:db8::7"), true},
		{"IPv6 outside", "2001:db8::/32", tcp("2001:db9::7"), false},
		{"IPv4-mapped remote", "127.0.0.0/8", tcp("::ffff:127.0.0.1"), true},
		{"malformed entry matches nothing", "not-an-address", tcp("192.0.2.1"), false},
		{"spaces are not trimmed", "192.0.2.1, 10.0.0.1", tcp("10.0.0.1"), false},
		{"empty option", " ", tcp("192.0.2.1"), false},
		{"remote that is not TCP", "0.0.0.0/0", &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSourceAddress(withSource(tc.option), tc.remote)
			if (err == nil) != tc.ok {
				t.Fatalf("source-address %q from %v: err %v, want ok=%v", tc.option, tc.remote, err, tc.ok)
			}
		})
	}
}

func TestSignUser(t *testing.T) {
	a, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := sshtest.NewSigner(t).PublicKey()
	tests := []struct {
		name string
		u    UserCert
		err  string
	}{
		{"no principals", UserCert{Key: key, TTL: time.Minute}, "no principals"},
		{"zero ttl", UserCert{Key: key, Principals: []string{"bob"}}, "ttl must be positive"},
		{"negative ttl", UserCert{Key: key, Principals: []string{"bob"}, TTL: -time.Second}, "ttl must be positive"},
	}
	for _, tc := range tests {
		if _, err := a.SignUser(tc.u); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
		}
	}

	before := time.Now()
	c, err := a.SignUser(UserCert{Key: key, Principals: []string{"ubuntu"}, KeyID: "gatehouse user=bob", TTL: 5 * time.Minute,
		Extensions: map[string]string{"permit-pty": ""}})
	if err != nil {
		t.Fatal(err)
	}
	after, validAfter, validBefore := time.Now(), time.Unix(int64(c.ValidAfter), 0), time.Unix(int64(c.ValidBefore), 0)
	if c.CertType != ssh.UserCert || c.KeyId != "gatehouse user=bob" || len(c.ValidPrincipals) != 1 || c.ValidPrincipals[0] != "ubuntu" {
		t.Errorf("certificate %+v", c)
	}
	// Backdated a minute by default, for nodes whose clocks are behind.
	if validAfter.After(before.Add(-time.Minute+time.Second)) || validAfter.Before(after.Add(-time.Minute-time.Second)) {
		t.Errorf("valid after %v, want a minute before %v", validAfter, before)
	}
	if validBefore.Before(before.Add(5*time.Minute-time.Second)) || validBefore.After(after.Add(5*time.Minute)) {
		t.Errorf("valid before %v, want five minutes after %v", validBefore, before)
	}
	if _, ok := c.Extensions["permit-pty"]; !ok || len(c.Extensions) != 1 {
		t.Errorf("extensions %v, want only those asked for", c.Extensions)
	}
	if _, err := a.CheckUserCert(c, "ubuntu"); err != nil {
		t.Errorf("the CA refuses its own certificate: %v", err)
	}
	c2, err := a.SignUser(UserCert{Key: key, Principals: []string{"ubuntu"}, TTL: time.Minute, Backdate: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Since(time.Unix(int64(c2.ValidAfter), 0)); got > 12*time.Second {
		t.Errorf("backdated %v, want 10s", got)
	}
	if c.Serial == c2.Serial {
		t.Error("two certificates share a serial")
	}
}

func TestHostCertificates(t *testing.T) {
	a, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hostCA := a.HostCAKey().Marshal()
	checker := ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return string(k.Marshal()) == string(hostCA) }}
	remote := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 22}

	s1, err := a.HostSigner("db-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.CheckHostKey("db-1:22", remote, s1.PublicKey()); err != nil {
		t.Errorf("host certificate for db-1 refused for db-1: %v", err)
	}
	if err := checker.CheckHostKey("db-2:22", remote, s1.PublicKey()); err == nil {
		t.Error("host certificate for db-1 accepted for db-2")
	}
	if again, _ := a.HostSigner("db-1"); again != s1 {
		t.Error("HostSigner minted a new certificate instead of reusing a valid one")
	}
	c := s1.PublicKey().(*ssh.Certificate)
	if c.CertType != ssh.HostCert || string(c.Key.Marshal()) != string(a.HostKey().PublicKey().Marshal()) {
		t.Errorf("host certificate %+v is not over the bastion's host key", c)
	}

	b, err := a.BastionSigner([]string{"bastion.example.com", "192.0.2.10"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bastion.example.com:22", "192.0.2.10:2222"} {
		if err := checker.CheckHostKey(name, remote, b.PublicKey()); err != nil {
			t.Errorf("bastion certificate refused for %s: %v", name, err)
		}
	}
	if err := checker.CheckHostKey("elsewhere:22", remote, b.PublicKey()); err == nil {
		t.Error("bastion certificate accepted for a name it does not list")
	}
	// A user certificate from the host CA, or the reverse, is refused.
	if _, err := a.CheckUserCert(b.PublicKey(), "bastion.example.com"); err == nil {
		t.Error("a host certificate passed as a user certificate")
	}
}

func TestLoadKeepsAndCreatesKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{UserCAFile, HostCAFile, HostKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if string(a.UserCAKey().Marshal()) == string(a.HostCAKey().Marshal()) {
		t.Error("the user and host CAs are one key")
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.UserCAKey().Marshal()) != string(b.UserCAKey().Marshal()) || string(a.HostCAKey().Marshal()) != string(b.HostCAKey().Marshal()) ||
		string(a.HostKey().PublicKey().Marshal()) != string(b.HostKey().PublicKey().Marshal()) {
		t.Error("a second Load made new keys instead of reading the existing ones")
	}

	// Commands racing to create the CAs all end up with the same keys.
	race := filepath.Join(t.TempDir(), "race")
	keys := make([]string, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := Load(race)
			if err != nil {
				t.Errorf("racing Load %d: %v", i, err)
				return
			}
			keys[i] = string(a.UserCAKey().Marshal())
		}()
	}
	wg.Wait()
	for i, k := range keys {
		if k == "" || k != keys[0] {
			t.Fatalf("racing Load %d got a different (or no) user CA", i)
		}
	}

	if err := os.WriteFile(filepath.Join(dir, HostKeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "parse key") {
		t.Errorf("a corrupt host key: err %v, want a parse error", err)
	}
}

func TestAuthorizedLine(t *testing.T) {
	k := sshtest.NewSigner(t).PublicKey()
	line := AuthorizedLine(k, "gatehouse user CA")
	if !strings.HasPrefix(line, "ssh-ed25519 ") || !strings.HasSuffix(line, " gatehouse user CA") || strings.Contains(line, "\n") {
		t.Errorf("line %q", line)
	}
	parsed, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || comment != "gatehouse user CA" || string(parsed.Marshal()) != string(k.Marshal()) {
		t.Errorf("line %q does not parse back: %v", line, err)
	}
	if bare := AuthorizedLine(k, ""); strings.Count(bare, " ") != 1 {
		t.Errorf("line without a comment %q", bare)
	}
}
