package proxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// dialFrom opens a TCP connection to the bastion from a loopback source
// address of the test's choosing (all of 127.0.0.0/8 is local on Linux).
func dialFrom(t *testing.T, b *bastion, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", b.addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// loginFrom authenticates to the bastion as user with signer, from src.
func loginFrom(t *testing.T, b *bastion, src, user string, signer ssh.Signer) error {
	t.Helper()
	hostCA := b.auth.HostCAKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), hostCA) }}
	conn := dialFrom(t, b, src)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, chans, reqs, err := ssh.NewClientConn(conn, b.addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: checker.CheckHostKey, HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01}})
	if err != nil {
		return err
	}
	ssh.NewClient(c, chans, reqs).Close()
	return nil
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 256)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// foreignSigner holds a certificate for user from a CA the bastion does
// not trust: a wrong key, as far as the bastion is concerned.
func foreignSigner(t *testing.T, user string) ssh.Signer {
	t.Helper()
	other, err := ca.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := sshtest.NewSigner(t)
	cert, err := other.SignUser(ca.UserCert{Key: s.PublicKey(), Principals: []string{user}, KeyID: "foreign", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(cert, s)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestPreAuthPerSource: one source can hold only its share of the
// unauthenticated slots, a connection that sends no version line is cut at
// the version deadline (not the grace time), and sources whose connections
// time out, send garbage or fail to authenticate are refused for a while;
// everyone else logs in all along, and the audit log gets one event per
// penalty and one summary of what was refused.
func TestPreAuthPerSource(t *testing.T) {
	b := startBastion(t, func(o *proxy.Options) {
		o.PreAuth.PerSource = 3
		o.Timeouts.Version = 300 * time.Millisecond
	}, nil)

	// 127.0.0.1 fills its three slots with silent connections...
	var silent []net.Conn
	for i := 0; i < 3; i++ {
		silent = append(silent, dialFrom(t, b, "127.0.0.1"))
	}
	time.Sleep(100 * time.Millisecond) // let the server admit them
	// ...the fourth is refused at once...
	if !closedWithin(dialFrom(t, b, "127.0.0.1"), 5*time.Second) {
		t.Fatal("a fourth unauthenticated connection from one source was not refused")
	}
	// ...while another source logs in.
	if err := loginFrom(t, b, "127.0.0.2", "bob", b.userSigner(t, "bob")); err != nil {
		t.Fatalf("login from 127.0.0.2 while 127.0.0.1 holds its slots: %v", err)
	}
	// The silent ones are cut at the version deadline (300 ms), far
	// before the login grace time (30 s).
	for i, c := range silent {
		if !closedWithin(c, 10*time.Second) {
			t.Fatalf("silent connection %d still open 10 s after the version deadline", i)
		}
	}
	// Two timeouts (10 s each) are past the 15 s minimum: 127.0.0.1 is
	// refused, even with a good certificate.
	waitFor(t, func() bool { return len(b.audit.Events("ssh.preauth.penalty")) == 1 })
	if err := loginFrom(t, b, "127.0.0.1", "bob", b.userSigner(t, "bob")); err == nil {
		t.Fatal("a penalised source could still log in")
	}

	// Garbage instead of SSH (10 s each), and certificates from a CA the
	// bastion does not trust (5 s each), from two more sources.
	for i := 0; i < 2; i++ {
		c := dialFrom(t, b, "127.0.0.3")
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: bastion\r\n\r\n")
		closedWithin(c, 10*time.Second)
	}
	wrong := foreignSigner(t, "bob")
	for i := 0; i < 3; i++ {
		if err := loginFrom(t, b, "127.0.0.4", "bob", wrong); err == nil {
			t.Fatal("a foreign certificate was accepted")
		}
	}
	waitFor(t, func() bool { return len(b.audit.Events("ssh.preauth.penalty")) == 3 }, func() string { return fmt.Sprint(b.audit.Events("ssh.preauth.penalty"), b.srv.Stats()) })
	got := map[string]string{}
	for _, ev := range b.audit.Events("ssh.preauth.penalty") {
		got[fmt.Sprint(ev.Fields["source"])] = fmt.Sprint(ev.Fields["reason"])
	}
	want := map[string]string{"127.0.0.1": "version_timeout", "127.0.0.3": "invalid", "127.0.0.4": "authfail"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("penalties: got %v, want %v", got, want)
	}
	if !closedWithin(dialFrom(t, b, "127.0.0.3"), 5*time.Second) {
		t.Fatal("a source penalised for garbage was not refused")
	}
	// Everyone else still gets in, and is on record as usual.
	if err := loginFrom(t, b, "127.0.0.5", "bob", b.userSigner(t, "bob")); err != nil {
		t.Fatalf("login from 127.0.0.5: %v", err)
	}
	waitFor(t, func() bool { return b.audit.Count("ssh.auth.success") == 2 })

	st := b.srv.Stats().PreAuth
	if st.Dropped["per_source"] != 1 || st.Dropped["penalty"] < 2 || st.Ended["version_timeout"] != 3 ||
		st.Ended["invalid"] != 2 || st.Ended["authfail"] != 3 || st.Ended["authenticated"] != 2 ||
		st.PenalisedSources != 3 || st.Unauthenticated != 0 {
		t.Fatalf("stats: %+v", st)
	}

	// The refusals are summarised in one event when the server stops.
	b.stop()
	sums := b.audit.Events("ssh.preauth.dropped")
	if len(sums) != 1 {
		t.Fatalf("want one ssh.preauth.dropped summary, got %d", len(sums))
	}
	f := sums[0].Fields
	byReason, _ := f["by_reason"].(map[string]any)
	sources, _ := f["sources"].(map[string]any)
	if fmt.Sprint(f["dropped"]) != fmt.Sprint(st.Dropped["per_source"]+st.Dropped["penalty"]) ||
		fmt.Sprint(byReason["per_source"]) != "1" || sources["127.0.0.1"] == nil || fmt.Sprint(f["penalties_imposed"]) != "3" {
		t.Fatalf("summary: %v", f)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool, show ...func() string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			for _, f := range show {
				t.Log(f())
			}
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}
