package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/internal/proxytest"
)

// These tests run the whole jump path (bastion, inner hop, node) in the
// test process, against the in-process node of package sshtest and the
// fakes of package proxytest: no root, no sshd, no local accounts.

// outcome is what a client saw of one command through a jump.
type outcome struct {
	stdout, stderr string
	status         int // -1: no exit status
	err            error
}

// run runs cmd as `ssh -J user@bastion login@node cmd` would.
func (b *bastion) run(t *testing.T, user, login, node, cmd string) outcome {
	t.Helper()
	inner, closeAll, err := b.dialNode(t, user, login, node)
	if err != nil {
		return outcome{status: -1, err: err}
	}
	defer closeAll()
	sess, err := inner.NewSession()
	if err != nil {
		return outcome{status: -1, err: err}
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	err = sess.Run(cmd)
	o := outcome{stdout: out.String(), stderr: errb.String(), err: err}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		o.status = 0
	case errors.As(err, &ee):
		o.status = ee.ExitStatus()
	default:
		o.status = -1
	}
	return o
}

// fakeBastion starts a bastion whose Authorizer is az and whose audit log
// is kept in memory.
func fakeBastion(t *testing.T, az *proxytest.Authorizer, mutate func(*proxy.Options)) *bastion {
	t.Helper()
	return startBastionWith(t, az, mutate, nil)
}

// An allowed jump runs the command on the node as the login, with a
// certificate the node checked: signed by the bastion's user CA, the
// login as its only principal, the real user and the node in its key id,
// valid for node_cert_ttl, and port forwarding only when the verdict
// allows it.
func TestAllowedJumpRunsOnTheNode(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{Roles: []string{"dev"}})
	b := fakeBastion(t, az, func(o *proxy.Options) { o.Timeouts.NodeCertTTL = 2 * time.Minute })

	o := b.run(t, "bob", "ubuntu", "web-1", "id -un; echo hello")
	if o.err != nil || o.stdout != "ubuntu\nhello\n" || o.stderr != "" {
		t.Fatalf("jump: %+v", o)
	}
	logins := b.node.Logins()
	if len(logins) != 1 {
		t.Fatalf("the node accepted %d logins, want 1", len(logins))
	}
	l := logins[0]
	if l.User != "ubuntu" || len(l.Principals) != 1 || l.Principals[0] != "ubuntu" {
		t.Errorf("node login %q with principals %v, want ubuntu alone", l.User, l.Principals)
	}
	if !strings.Contains(l.KeyID, "user=bob") || !strings.Contains(l.KeyID, "node=web-1") || !strings.Contains(l.KeyID, "session=") {
		t.Errorf("key id %q must name the user, the node and the session", l.KeyID)
	}
	if _, ok := l.Extensions["permit-port-forwarding"]; ok {
		t.Errorf("certificate permits port forwarding although the verdict does not: %v", l.Extensions)
	}
	// SignUser backdates by a minute for clock skew.
	if got := l.ValidBefore.Sub(l.ValidAfter); got < 2*time.Minute || got > 3*time.Minute+2*time.Second {
		t.Errorf("certificate valid for %v, want node_cert_ttl (2m) plus the backdating minute", got)
	}

	start := b.audit.Wait(t, "session.start", 1)[0]
	if start.Actor != "bob" || start.Target != "web-1" {
		t.Errorf("session.start: %+v", start)
	}
	exec := b.audit.Wait(t, "exec", 1)[0]
	if exec.Fields["login"] != "ubuntu" || exec.Fields["command"] != "id -un; echo hello" {
		t.Errorf("exec: %+v", exec)
	}
	if end := b.audit.Wait(t, "session.end", 1)[0]; end.Actor != "bob" || end.Target != "web-1" {
		t.Errorf("session.end: %+v", end)
	}
}

// A verdict that allows port forwarding puts it in the node's
// certificate, and the node honours a tunnel.
func TestForwardingVerdictReachesTheCertificate(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", proxytest.Any, proxy.Verdict{PortForwarding: true})
	b := fakeBastion(t, az, nil)
	if o := b.run(t, "bob", "ubuntu", "web-1", "true"); o.err != nil {
		t.Fatalf("jump: %+v", o)
	}
	if _, ok := b.node.Logins()[0].Extensions["permit-port-forwarding"]; !ok {
		t.Fatal("verdict allows port forwarding, the node's certificate does not")
	}
}

// Every refusal reaches the user as one line on stderr, exit status 1,
// is on record as session.denied, and never reaches the node.
func TestJumpRefusals(t *testing.T) {
	otherKey := func(t *testing.T) string {
		return ca.AuthorizedLine(sshtest.NewSigner(t).PublicKey(), "")
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, az *proxytest.Authorizer, o *proxy.Options)
		login   string
		line    string // what the user sees
		outcome string // of the session.denied event
		reached bool   // the bastion logged in to the node
	}{
		{
			name:    "login not allowed",
			setup:   func(_ *testing.T, az *proxytest.Authorizer, _ *proxy.Options) {},
			login:   "root",
			line:    "gatehouse: bob may not log in as root on web-1 (no role allows login root)",
			outcome: "denied",
		},
		{
			name: "login not allowed, with a hint",
			setup: func(_ *testing.T, az *proxytest.Authorizer, _ *proxy.Options) {
				az.Set("bob", "root", "web-1", proxy.Verdict{Reason: "role dev allows ubuntu only", Rule: "dev", Hint: "ask: ssh bob@bastion request root@web-1"})
			},
			login:   "root",
			line:    "gatehouse: bob may not log in as root on web-1 (role dev allows ubuntu only); ask: ssh bob@bastion request root@web-1",
			outcome: "denied",
		},
		{
			name: "locked user",
			setup: func(_ *testing.T, az *proxytest.Authorizer, _ *proxy.Options) {
				az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
				az.Lock("bob", "your access is locked (by alice: offboarding)")
			},
			login:   "ubuntu",
			line:    "gatehouse: your access is locked (by alice: offboarding)",
			outcome: "denied",
		},
		{
			name: "authorizer error fails closed",
			setup: func(_ *testing.T, az *proxytest.Authorizer, _ *proxy.Options) {
				az.Fail("bob", "ubuntu", "web-1", errors.New("store unreachable"))
			},
			login:   "ubuntu",
			line:    "gatehouse: bob may not log in as ubuntu on web-1 (access could not be checked right now; try again)",
			outcome: "denied",
		},
		{
			name: "node refuses the certificate",
			setup: func(_ *testing.T, az *proxytest.Authorizer, _ *proxy.Options) {
				az.Allow("bob", "nobody-here", "web-1", proxy.Verdict{})
			},
			login:   "nobody-here",
			line:    "gatehouse: cannot reach web-1: the node refused the Gatehouse certificate (is TrustedUserCAKeys set, and does the login exist?)",
			outcome: "error",
		},
		{
			name: "node host key does not match",
			setup: func(t *testing.T, az *proxytest.Authorizer, o *proxy.Options) {
				az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
				o.Nodes[0].HostKey = otherKey(t)
			},
			login:   "ubuntu",
			line:    "gatehouse: cannot reach web-1: its host key does not match the one on record (refused; an operator must check the node)",
			outcome: "error",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			az := proxytest.NewAuthorizer()
			b := fakeBastion(t, az, func(o *proxy.Options) { tc.setup(t, az, o) })
			o := b.run(t, "bob", tc.login, "web-1", "echo REACHED")
			if o.status != 1 || o.stdout != "" || o.stderr != tc.line+"\r\n" {
				t.Errorf("got status %d, stdout %q, stderr %q (%v)\nwant status 1 and stderr %q", o.status, o.stdout, o.stderr, o.err, tc.line)
			}
			denied := b.audit.Wait(t, "session.denied", 1)[0]
			if denied.Actor != "bob" || denied.Target != "web-1" || denied.Outcome != tc.outcome {
				t.Errorf("session.denied: %+v, want outcome %s", denied, tc.outcome)
			}
			if n := b.audit.Count("session.start"); n != 0 {
				t.Errorf("%d session.start events for a refused jump", n)
			}
			if n := len(b.node.Logins()); n != 0 {
				t.Errorf("the node accepted %d logins for a refused jump", n)
			}
		})
	}
}

// A node name not in the inventory is refused when the client asks for
// the tunnel, with the way to list the nodes.
func TestJumpToUnknownNode(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow(proxytest.Any, proxytest.Any, proxytest.Any, proxy.Verdict{})
	b := fakeBastion(t, az, nil)
	_, _, err := b.dialNode(t, "bob", "ubuntu", "db-9")
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != ssh.Prohibited || oce.Message != `gatehouse: unknown node "db-9" (see: ssh bob@bastion nodes)` {
		t.Fatalf("want the tunnel refused with the unknown-node line, got %v", err)
	}
	denied := b.audit.Wait(t, "session.denied", 1)[0]
	if denied.Target != "db-9" || denied.Fields["reason"] != "unknown node" || denied.Outcome != "denied" {
		t.Errorf("session.denied: %+v", denied)
	}
	if az.Asked() != 0 {
		t.Errorf("the authorizer was asked %d times about a node that does not exist", az.Asked())
	}
}

// liveSession is one long-running command through a jump.
type liveSession struct {
	stderr bytes.Buffer
	done   chan error
	close  func()
}

// startLive runs `sleep 60` as bob/ubuntu on web-1 and returns once the
// session is on record as started.
func startLive(t *testing.T, b *bastion) *liveSession {
	t.Helper()
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	sess, err := inner.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	ls := &liveSession{done: make(chan error, 1), close: closeAll}
	sess.Stdout = io.Discard
	sess.Stderr = &ls.stderr
	before := b.audit.Count("session.start")
	if err := sess.Start("sleep 60"); err != nil {
		t.Fatal(err)
	}
	go func() { ls.done <- sess.Wait() }()
	// Waiting on the audit log also orders this goroutine after the
	// relay's bookkeeping for the race detector.
	b.audit.Wait(t, "session.start", before+1)
	return ls
}

// ended waits for the session to end and returns its stderr.
func (ls *liveSession) ended(t *testing.T) string {
	t.Helper()
	select {
	case err := <-ls.done:
		if err == nil {
			t.Error("an ended session exited 0")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session was still running 10 s after it was ended")
	}
	return strings.TrimSpace(ls.stderr.String())
}

// The re-check loop ends a live session once its verdict turns to a
// refusal, tells the user why in one line, and records it.
func TestRecheckLoopEndsRevokedSession(t *testing.T) {
	hhmm := `\d\d:\d\d`
	tests := []struct {
		name   string
		allow  proxy.Verdict
		revoke func(az *proxytest.Authorizer)
		notice string // a regular expression
		rule   string
	}{
		{
			name: "role removed",
			revoke: func(az *proxytest.Authorizer) {
				az.Set("bob", "ubuntu", "web-1", proxy.Verdict{Reason: "no role allows login ubuntu"})
			},
			notice: `gatehouse: access as ubuntu on web-1 is no longer allowed \(no role allows login ubuntu\); session closed`,
		},
		{
			name:   "user locked",
			revoke: func(az *proxytest.Authorizer) { az.Lock("bob", "bob is locked") },
			notice: `gatehouse: your access was locked at ` + hhmm + `; session closed`,
			rule:   proxy.RuleLock,
		},
		{
			name:  "grant ended",
			allow: proxy.Verdict{RequestIDs: []string{"req-7"}},
			revoke: func(az *proxytest.Authorizer) {
				az.Set("bob", "ubuntu", "web-1", proxy.Verdict{Reason: "request req-7 expired"})
			},
			notice: `gatehouse: access via request req-7 ended at ` + hhmm + `; session closed`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			az := proxytest.NewAuthorizer()
			az.Allow("bob", "ubuntu", "web-1", tc.allow)
			b := fakeBastion(t, az, nil)
			ctx, cancel := context.WithCancel(context.Background())
			loopDone := make(chan struct{})
			go func() { defer close(loopDone); b.srv.RunRechecks(ctx, 20*time.Millisecond) }()
			defer func() { cancel(); <-loopDone }()

			ls := startLive(t, b)
			asked := az.Asked()
			for az.Asked() < asked+2 { // the loop re-checks and keeps the session
				time.Sleep(5 * time.Millisecond)
			}
			if len(b.srv.Live()) != 1 {
				t.Fatalf("live sessions before the revocation: %+v", b.srv.Live())
			}
			tc.revoke(az)
			if got := ls.ended(t); !regexp.MustCompile(`^` + tc.notice + `$`).MatchString(got) {
				t.Errorf("notice %q, want /%s/", got, tc.notice)
			}
			ev := b.audit.Wait(t, "session.terminated", 1)[0]
			if ev.Actor != "gatehouse" || ev.Target != "web-1" || ev.Fields["user"] != "bob" || ev.Fields["login"] != "ubuntu" || ev.Fields["rule"] != tc.rule {
				t.Errorf("session.terminated: %+v", ev)
			}
			if n := len(b.srv.Live()); n != 0 {
				t.Errorf("%d sessions still listed as live", n)
			}
			b.audit.Wait(t, "session.end", 1)
		})
	}
}

// A re-check that cannot be answered keeps live sessions (a store outage
// must not cut everyone off; new sessions fail closed instead), and ends
// them once the answer is a refusal.
func TestRecheckErrorKeepsLiveSession(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
	b := fakeBastion(t, az, nil)
	ls := startLive(t, b)
	az.Fail("bob", "ubuntu", "web-1", errors.New("store unreachable"))
	if n := b.srv.Recheck(context.Background(), "", ""); n != 0 {
		t.Fatalf("Recheck closed %d sessions on an authorizer error", n)
	}
	select {
	case err := <-ls.done:
		t.Fatalf("the session ended on an authorizer error: %v (%s)", err, ls.stderr.String())
	case <-time.After(100 * time.Millisecond):
	}
	az.Set("bob", "ubuntu", "web-1", proxy.Verdict{Reason: "role removed"})
	if n := b.srv.Recheck(context.Background(), "bob", "gatehouse: your roles changed; session closed"); n != 1 {
		t.Fatalf("Recheck closed %d sessions, want 1", n)
	}
	if got := ls.ended(t); got != "gatehouse: your roles changed; session closed" {
		t.Errorf("notice %q", got)
	}
}

// A session ended from the live registry (the web UI's terminate) tells
// the user who ended it, leaves the registry and is on record.
func TestTerminateFromLiveRegistry(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
	b := fakeBastion(t, az, nil)
	ls := startLive(t, b)
	live := b.srv.Live()
	if len(live) != 1 {
		t.Fatalf("live sessions: %+v", live)
	}
	s := live[0]
	if s.User != "bob" || s.Login != "ubuntu" || s.Node != "web-1" || s.Kind != "exec" || s.Command != "sleep 60" {
		t.Errorf("live session: %+v", s)
	}
	if b.srv.Terminate(context.Background(), "no-such-session", "alice") {
		t.Error("Terminate found a session that does not exist")
	}
	if !b.srv.Terminate(context.Background(), s.ID, "alice") {
		t.Fatal("Terminate did not find the live session")
	}
	if got := ls.ended(t); got != "gatehouse: session terminated by alice" {
		t.Errorf("notice %q", got)
	}
	if n := len(b.srv.Live()); n != 0 {
		t.Errorf("%d sessions still listed as live", n)
	}
	ev := b.audit.Wait(t, "session.terminated", 1)[0]
	if ev.Actor != "alice" || ev.Target != "web-1" || ev.Fields["session"] != s.ID || ev.Fields["user"] != "bob" {
		t.Errorf("session.terminated: %+v", ev)
	}
	// A second terminate finds the session closing and records nothing.
	b.srv.Terminate(context.Background(), s.ID, "alice")
	time.Sleep(50 * time.Millisecond)
	if n := b.audit.Count("session.terminated"); n != 1 {
		t.Errorf("%d session.terminated events, want 1", n)
	}
}

// The audit log gets one event per outcome, in the words the README's
// audit table uses, and nothing of a refused session reaches the node.
func TestJumpAuditTrail(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
	b := fakeBastion(t, az, nil)
	if o := b.run(t, "bob", "ubuntu", "web-1", "true"); o.err != nil {
		t.Fatal(o.err)
	}
	_ = b.run(t, "bob", "root", "web-1", "true")
	b.audit.Wait(t, "session.end", 1)
	b.audit.Wait(t, "session.denied", 1)
	for typ, want := range map[string]int{"ssh.auth.success": 2, "session.start": 1, "exec": 1, "session.end": 1, "session.denied": 1} {
		if n := b.audit.Count(typ); n != want {
			t.Errorf("%d %s events, want %d", n, typ, want)
		}
	}
	for _, ev := range b.audit.Events("") {
		if ev.Outcome == "" {
			t.Errorf("event without an outcome: %+v", ev)
		}
	}
}

// An interactive shell on a pty goes through the jump both ways: what
// the user types reaches the node and its echo comes back.
func TestInteractiveShellThroughJump(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
	b := fakeBastion(t, az, nil)
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	sess, err := inner.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "hello node\r"); err != nil {
		t.Fatal(err)
	}
	want := "hello node\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(stdout, got); err != nil || string(got) != want {
		t.Fatalf("echo %q, %v; want %q", got, err, want)
	}
	_, _ = stdin.Write([]byte{0x04})
	if err := sess.Wait(); err != nil {
		t.Fatalf("shell ended with %v", err)
	}
	start := b.audit.Wait(t, "session.start", 1)[0]
	if start.Fields["kind"] != "shell" || start.Fields["login"] != "ubuntu" {
		t.Errorf("session.start: %+v", start.Fields)
	}
	if _, ok := b.node.Logins()[0].Extensions["permit-pty"]; !ok {
		t.Error("the node's certificate does not permit a pty")
	}
}
