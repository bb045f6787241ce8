package proxy_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/internal/proxytest"
	"github.com/gatehouse-dev/gatehouse/proxy/preauth"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// allowUbuntu is a one-rule authorizer: login ubuntu on any node. The real
// policy is tested in package policy and end to end; here the proxy's own
// mechanics are under test.
type allowUbuntu struct{}

func (allowUbuntu) Admit(context.Context, proxy.Identity) error { return nil }
func (allowUbuntu) Authorize(_ context.Context, id proxy.Identity, login string, n config.Node) (proxy.Verdict, error) {
	if login != "ubuntu" {
		return proxy.Verdict{Reason: "no role allows login " + login}, nil
	}
	return proxy.Verdict{Allowed: true, Roles: []string{"dev"}}, nil
}
func (allowUbuntu) Nodes(context.Context, proxy.Identity, []config.Node) ([]proxy.NodeAccess, error) {
	return nil, nil
}
func (allowUbuntu) Describe(context.Context, proxy.Identity) (string, error) {
	return "roles: dev\n", nil
}

// memAudit keeps the audit log in memory.
type memAudit = proxytest.Auditor

type bastion struct {
	addr   string
	auth   *ca.Authority
	audit  *memAudit
	srv    *proxy.Server
	node   *sshtest.Node // nil on a real sshd node
	cancel context.CancelFunc
	done   chan error
}

// testOptions are gatehouse.yaml's defaults for what the harness does not
// set itself.
func testOptions() proxy.Options {
	return proxy.Options{
		Address: "127.0.0.1:2222",
		PreAuth: preauth.Config{Start: 50, Rate: 30, Full: 100, PerSource: 10, Penalties: preauth.Penalties{
			AuthFail: 5 * time.Second, NoAuth: time.Second, GraceExceeded: 10 * time.Second, Invalid: 10 * time.Second,
			Min: 15 * time.Second, Max: 10 * time.Minute, MaxSources: 65536}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func startBastion(t testing.TB, mutate func(*proxy.Options), rec proxy.RecorderFactory) *bastion {
	t.Helper()
	return startBastionWith(t, allowUbuntu{}, mutate, rec)
}

func startBastionWith(t testing.TB, az proxy.Authorizer, mutate func(*proxy.Options), rec proxy.RecorderFactory) *bastion {
	t.Helper()
	mem := &memAudit{}
	return startBastionFull(t, az, mutate, rec, mem, mem)
}

// startBastionFull is startBastionWith with the audit log given: aud
// receives the events, mem is what the tests read.
func startBastionFull(t testing.TB, az proxy.Authorizer, mutate func(*proxy.Options), rec proxy.RecorderFactory, aud proxy.Auditor, mem *memAudit) *bastion {
	t.Helper()
	return harness{az: az, mutate: mutate, rec: rec, aud: aud, mem: mem}.start(t)
}

// harness starts a bastion with one node, web-1: by default the
// in-process node of package sshtest, which needs neither root nor sshd.
type harness struct {
	az     proxy.Authorizer
	mutate func(*proxy.Options)
	rec    proxy.RecorderFactory
	aud    proxy.Auditor
	mem    *memAudit
	// node, when set, changes the in-process node's options.
	node func(*sshtest.Options)
	// realSSHD runs web-1 as a real OpenSSH sshd with the account
	// ubuntu (root only; the test is skipped otherwise), for benchmarks
	// that measure what a node really costs.
	realSSHD bool
}

func (h harness) start(t testing.TB) *bastion {
	t.Helper()
	dir := t.TempDir()
	auth, err := ca.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := &bastion{auth: auth, audit: h.mem, done: make(chan error, 1)}
	web1 := config.Node{Name: "web-1", Labels: map[string]string{"env": "staging"}}
	if h.realSSHD {
		caFile := filepath.Join(dir, "user_ca.pub")
		if err := os.WriteFile(caFile, []byte(ca.AuthorizedLine(auth.UserCAKey(), "")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		e2e.RequireSystem(t)
		e2e.RequireAccount(t, "ubuntu")
		node := e2e.StartNode(t, "web-1", e2e.NodeOptions{TrustedUserCAKeys: caFile})
		web1.Address, web1.HostKey = node.Addr, node.HostKeyLine
	} else {
		nopt := sshtest.Options{UserCA: auth.UserCAKey(), Logins: []string{"ubuntu", "root", "deploy"}}
		if h.node != nil {
			h.node(&nopt)
		}
		b.node = sshtest.Start(t, nopt)
		web1.Address, web1.HostKey = b.node.Addr, b.node.HostKeyLine
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opt := testOptions()
	opt.Nodes = proxy.Inventory{web1}
	opt.CA, opt.Authorizer, opt.Sessions, opt.Audit, opt.Recorder = auth, h.az, st, h.aud, h.rec
	if h.mutate != nil {
		h.mutate(&opt)
	}
	srv, err := proxy.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.addr, b.srv, b.cancel = ln.Addr().String(), srv, cancel
	go func() { b.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(b.stop)
	return b
}

func (b *bastion) stop() {
	b.cancel()
	<-b.done
	b.done <- nil // idempotent for a second stop
}

// userSigner returns a certificate signer for user from the bastion's CA.
func (b *bastion) userSigner(t testing.TB, user string) ssh.Signer {
	t.Helper()
	s := sshtest.NewSigner(t)
	cert, err := b.auth.SignUser(ca.UserCert{Key: s.PublicKey(), Principals: []string{user}, KeyID: "test", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(cert, s)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// dialInner opens the two connections `ssh -J user@bastion login@web-1`
// does, in process; close ends both.
func (b *bastion) dialInner(t testing.TB, user, login string) (inner *ssh.Client, close func(), err error) {
	t.Helper()
	return b.dialNode(t, user, login, "web-1")
}

// hostKeys checks host certificates of the bastion's host CA, as a
// client with its @cert-authority line does.
func (b *bastion) hostKeys() ssh.HostKeyCallback {
	hostCA := b.auth.HostCAKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), hostCA) }}
	return checker.CheckHostKey
}

// dialBastion opens the outer connection `ssh -J user@bastion` does,
// as user with a certificate from the bastion's CA.
func (b *bastion) dialBastion(t testing.TB, user string) (*ssh.Client, error) {
	t.Helper()
	return b.dialBastionWith(t, user, b.userSigner(t, user))
}

// dialBastionWith is dialBastion with key.
func (b *bastion) dialBastionWith(t testing.TB, user string, key ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	outer, err := ssh.Dial("tcp", b.addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: b.hostKeys(), HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01}, Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bastion: %w", err)
	}
	return outer, nil
}

// dialNode is dialInner to any node name.
func (b *bastion) dialNode(t testing.TB, user, login, node string) (inner *ssh.Client, close func(), err error) {
	t.Helper()
	outer, err := b.dialBastion(t, user)
	if err != nil {
		return nil, nil, err
	}
	tunnel, err := outer.Dial("tcp", node+":22")
	if err != nil {
		outer.Close()
		return nil, nil, fmt.Errorf("direct-tcpip: %w", err)
	}
	c, chans, reqs, err := ssh.NewClientConn(tunnel, node+":22", &ssh.ClientConfig{User: login,
		HostKeyCallback: b.hostKeys(), HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01}})
	if err != nil {
		outer.Close()
		return nil, nil, fmt.Errorf("inner: %w", err)
	}
	inner = ssh.NewClient(c, chans, reqs)
	return inner, func() { inner.Close(); outer.Close() }, nil
}

// jump does what `ssh -J bob@bastion ubuntu@web-1 cmd` does, in process.
func (b *bastion) jump(t testing.TB, user, login, cmd string) (string, error) {
	t.Helper()
	inner, closeAll, err := b.dialInner(t, user, login)
	if err != nil {
		return "", err
	}
	defer closeAll()
	sess, err := inner.NewSession()
	if err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	err = sess.Run(cmd)
	return out.String() + errb.String(), err
}

// A command that ends at once must still be answered: the node's reply to
// the exec, the exit status and the close reach the client in that order.
// Relaying the close before the exec's reply made the client report EOF,
// about once in a few thousand sessions.
func TestExecEndingAtOnceIsAnswered(t *testing.T) {
	b := startBastion(t, nil, nil)
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	const workers, each = 8, 60
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				sess, err := inner.NewSession()
				if err != nil {
					errs <- fmt.Errorf("session: %w", err)
					return
				}
				if err := sess.Run("true"); err != nil {
					errs <- err
				}
				sess.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 3 {
			t.Errorf("run true: %v", err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d sessions failed", n, workers*each)
	}
}

func TestJumpAndNoGoroutineLeak(t *testing.T) {
	b := startBastion(t, nil, nil)
	// Warm up once so lazily started goroutines (database pools) exist.
	if out, err := b.jump(t, "bob", "ubuntu", "id -un"); err != nil || out != "ubuntu\n" {
		t.Fatalf("jump: %q %v", out, err)
	}
	time.Sleep(300 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := 0; i < 10; i++ {
		out, err := b.jump(t, "bob", "ubuntu", fmt.Sprintf("echo run-%d", i))
		if err != nil || out != fmt.Sprintf("run-%d\n", i) {
			t.Fatalf("jump %d: %q %v", i, out, err)
		}
	}
	out, err := b.jump(t, "bob", "root", "true")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || !strings.Contains(out, "gatehouse: bob may not log in as root on web-1") {
		t.Fatalf("refusal: want exit error and one-line refusal, got %q %v", out, err)
	}
	// Every relay goroutine must be gone once the connections are.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after 11 sessions\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
	if got := b.audit.Count("session.start"); got != 11 {
		t.Errorf("session.start events: want 11, got %d", got)
	}
}

func TestPreAuthLimits(t *testing.T) {
	b := startBastion(t, func(o *proxy.Options) {
		o.Timeouts.LoginGrace = 500 * time.Millisecond
		o.PreAuth.Start, o.PreAuth.Full = 2, 2 // no random early drop: the test counts slots
		// The silent connections would earn 127.0.0.1 a penalty, and the
		// last login comes from there (TestPreAuthPerSource tests those).
		o.PreAuth.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}, nil)
	readClosed := func(c net.Conn, within time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, 256)
		for {
			if _, err := c.Read(buf); err != nil {
				var ne net.Error
				return !(errors.As(err, &ne) && ne.Timeout())
			}
		}
	}
	// Two silent connections fill the unauthenticated slots...
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond)
	// ...so a third is dropped at once.
	third, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if !readClosed(third, 2*time.Second) {
		t.Fatal("third unauthenticated connection was not dropped")
	}
	// The silent ones are closed after the login grace time.
	for i, c := range held {
		if !readClosed(c, 5*time.Second) {
			t.Fatalf("silent connection %d still open after the grace time", i)
		}
	}
	// And the bastion still serves real users.
	if out, err := b.jump(t, "bob", "ubuntu", "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("after pre-auth abuse: %q %v", out, err)
	}
}

// Shutting the bastion down tells every live session why before it cuts
// the connections (README: SIGTERM closes live sessions with a notice).
// The server used to close every connection first, so the notice was
// written to channels that were already gone.
func TestShutdownTellsLiveSessions(t *testing.T) {
	b := startBastion(t, nil, nil)
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	const sessions = 4
	var stderrs [sessions]bytes.Buffer
	var started sync.WaitGroup
	done := make(chan error, sessions)
	for i := range sessions {
		sess, err := inner.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		out, err := sess.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		sess.Stderr = &stderrs[i]
		if err := sess.Start("echo up; exec sleep 30"); err != nil {
			t.Fatal(err)
		}
		started.Add(1)
		go func() {
			buf := make([]byte, 3)
			_, _ = io.ReadFull(out, buf)
			started.Done()
			_, _ = io.Copy(io.Discard, out)
			done <- sess.Wait()
		}()
	}
	started.Wait()
	b.stop()
	for range sessions {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a session outlived the bastion's shutdown by 10 s")
		}
	}
	for i := range stderrs {
		if !strings.Contains(stderrs[i].String(), "bastion shutting down") {
			t.Errorf("session %d: stderr %q lacks the shutdown notice", i, stderrs[i].String())
		}
	}
}

// revocable allows login ubuntu until revoked.
type revocable struct {
	allowUbuntu
	revoked atomic.Bool
}

func (r *revocable) Authorize(ctx context.Context, id proxy.Identity, login string, n config.Node) (proxy.Verdict, error) {
	if r.revoked.Load() {
		return proxy.Verdict{Reason: "access revoked"}, nil
	}
	return r.allowUbuntu.Authorize(ctx, id, login, n)
}

// A revocation must end a session whose client stopped reading: its
// channel window is full, so the termination notice cannot be written.
// The notice used to be written before the close, on the caller's
// goroutine, and blocked there for good: the revoked session stayed up.
func TestRevocationCutsAClientThatStoppedReading(t *testing.T) {
	az := &revocable{}
	b := startBastionWith(t, az, nil, nil)
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	sess, err := inner.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("exec yes"); err != nil {
		t.Fatal(err)
	}
	// Read a little to know the output flows, then stop reading: the
	// node keeps writing until the bastion's window towards us is full.
	if _, err := io.ReadFull(out, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)

	az.revoked.Store(true)
	closed := make(chan int, 1)
	go func() {
		closed <- b.srv.Recheck(context.Background(), "bob", "gatehouse: access revoked; session closed")
	}()
	select {
	case n := <-closed:
		if n != 1 {
			t.Fatalf("Recheck closed %d connections, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Recheck did not return within 10 s: the notice to a client that stopped reading blocked it")
	}
	gone := make(chan error, 1)
	go func() { gone <- inner.Wait() }()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked session's connection was still open 10 s after Recheck")
	}
}

// gatedAudit holds sftp.op appends until the gate opens, then appends them
// only if their context is still live, as a durable store would.
type gatedAudit struct {
	memAudit
	gate chan struct{}
}

func (g *gatedAudit) Append(ctx context.Context, ev storage.Event) error {
	if ev.Type == "sftp.op" {
		<-g.gate
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return g.memAudit.Append(ctx, ev)
}

// sftpPacket frames one SFTP packet: length, type, then the body.
func sftpPacket(typ byte, body ...[]byte) []byte {
	var b []byte
	for _, p := range body {
		b = append(b, p...)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(1+len(b)))
	return append(append(out, typ), b...)
}

func sftpString(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

// The last SFTP operations of a batch are still queued for the audit log
// when the client hangs up; their appends used the connection's context,
// which ends with it, so they were lost ("context canceled" in the e2e
// suite, now and then). Every operation must be on record.
func TestSFTPOpsOutliveTheClient(t *testing.T) {
	aud := &gatedAudit{gate: make(chan struct{})}
	b := startBastionFull(t, allowUbuntu{}, nil, nil, aud, &aud.memAudit)
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := inner.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	// The node's session runs as ubuntu: a directory it may write in.
	parent, err := os.MkdirTemp("", "gatehouse-sftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o777); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "made-by-sftp")
	read := func() byte {
		var hdr [5]byte
		if _, err := io.ReadFull(out, hdr[:]); err != nil {
			t.Fatalf("read sftp reply: %v", err)
		}
		if _, err := io.CopyN(io.Discard, out, int64(binary.BigEndian.Uint32(hdr[:4]))-1); err != nil {
			t.Fatal(err)
		}
		return hdr[4]
	}
	_, _ = in.Write(sftpPacket(1, binary.BigEndian.AppendUint32(nil, 3))) // INIT v3
	if typ := read(); typ != 2 {
		t.Fatalf("want SSH_FXP_VERSION, got type %d", typ)
	}
	// MKDIR id=1 path, no attributes.
	_, _ = in.Write(sftpPacket(14, binary.BigEndian.AppendUint32(nil, 1), sftpString(dir), binary.BigEndian.AppendUint32(nil, 0)))
	if typ := read(); typ != 101 {
		t.Fatalf("want SSH_FXP_STATUS, got type %d", typ)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the node did not make the directory: %v", err)
	}
	closeAll()
	time.Sleep(300 * time.Millisecond) // the connection's context is done by now
	close(aud.gate)
	deadline := time.Now().Add(10 * time.Second)
	for aud.Count("session.end") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if aud.Count("session.end") == 0 {
		t.Fatal("no session.end within 10 s")
	}
	if n := aud.Count("sftp.op"); n != 1 {
		t.Fatalf("sftp.op events on record: %d, want 1 (the mkdir)", n)
	}
}

// failingStart is an audit log that cannot take a session's start.
type failingStart struct{ memAudit }

func (f *failingStart) Append(ctx context.Context, ev storage.Event) error {
	if ev.Type == "session.start" {
		return errors.New("disk full")
	}
	return f.memAudit.Append(ctx, ev)
}

// A session whose start cannot be written to the audit log does not
// reach the node: the command would run off the record.
func TestSessionRefusedWhenItsStartCannotBeAudited(t *testing.T) {
	aud := &failingStart{}
	b := startBastionFull(t, allowUbuntu{}, nil, nil, aud, &aud.memAudit)
	out, err := b.jump(t, "bob", "ubuntu", "echo REACHED")
	if err == nil || strings.Contains(out, "REACHED") {
		t.Fatalf("the command ran without its session.start on record: %q, %v", out, err)
	}
	if !strings.Contains(out, "gatehouse: the audit log is unavailable; session refused") {
		t.Errorf("want the refusal in words, got %q", out)
	}
	if n := aud.Count("exec"); n != 0 {
		t.Errorf("%d exec events on record without their session.start", n)
	}
}

// refusingIndex is a session index that refuses every session in words,
// as the server's does for a second session on a one-session grant.
type refusingIndex struct{ storage.SessionStore }

func (refusingIndex) CreateSession(context.Context, storage.Session) error {
	return &proxy.UserError{Line: "gatehouse: grant g-1 was for one session, and another session has used it; session refused", Cause: errors.New("bound to s-0")}
}

// A session the index refuses with a UserError does not reach the node,
// whatever the recording mode, and the user gets its line.
func TestSessionRefusedByTheIndex(t *testing.T) {
	aud := &memAudit{}
	b := startBastionFull(t, allowUbuntu{}, func(o *proxy.Options) {
		o.RecordingMode = proxy.RecordingBestEffort
		o.Sessions = refusingIndex{o.Sessions}
	}, nil, aud, aud)
	out, err := b.jump(t, "bob", "ubuntu", "echo REACHED")
	if err == nil || strings.Contains(out, "REACHED") {
		t.Fatalf("the command ran in a session the index refused: %q, %v", out, err)
	}
	if !strings.Contains(out, "gatehouse: grant g-1 was for one session, and another session has used it; session refused") {
		t.Errorf("want the index's line, got %q", out)
	}
	if n := aud.Count("session.start"); n != 0 {
		t.Errorf("%d session.start events for a refused session", n)
	}
}
