package proxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/internal/proxytest"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// The refusals and terminations of a jump beyond those of the decision
// (TestJumpRefusals): a tunnel or channel the bastion will not open, a
// session it cannot record, a connection whose access changed while it
// was set up, a session past its maximum length. Each test asserts the
// line the user is shown and what is on record.

// wantOpenRefused fails the test unless err is a channel refused for
// reason with the message line.
func wantOpenRefused(t *testing.T, err error, reason ssh.RejectionReason, line string) {
	t.Helper()
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != reason || oce.Message != line {
		t.Fatalf("got %v\nwant the channel refused (%v) with %q", err, reason, line)
	}
}

// wantFields fails the test unless ev carries every field of want.
func wantFields(t *testing.T, ev storage.Event, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if ev.Fields[k] != v {
			t.Errorf("%s event: %s = %#v, want %#v (%+v)", ev.Type, k, ev.Fields[k], v, ev)
		}
	}
}

// allowedJump starts a bastion that allows bob as ubuntu on web-1 with
// v, its node changed by node (when set), and opens that jump; it ends
// with the test.
func allowedJump(t *testing.T, v proxy.Verdict, node func(*sshtest.Options)) (*bastion, *proxytest.Authorizer, *ssh.Client) {
	t.Helper()
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", "web-1", v)
	mem := &memAudit{}
	b := harness{az: az, aud: mem, mem: mem, node: node}.start(t)
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	return b, az, inner
}

// anonymousKeys is an OIDC key backend that binds every plain key to an
// identity naming no user: a backend bug the bastion must not turn into
// access.
type anonymousKeys struct{ proxy.KeyLogins }

func (anonymousKeys) LoginByKey(context.Context, string) (proxy.Identity, bool, error) {
	return proxy.Identity{}, true, nil
}

// The tunnel itself (the outer connection's direct-tcpip) is refused
// before anything is decided: the authorizer is never asked.
func TestTunnelRefusals(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*proxy.Options)
		key     func(t *testing.T, b *bastion) ssh.Signer // bob's
		payload []byte
		reason  ssh.RejectionReason
		line    string
	}{
		{
			name:    "malformed direct-tcpip",
			key:     func(t *testing.T, b *bastion) ssh.Signer { return b.userSigner(t, "bob") },
			payload: []byte{0, 0, 0, 9, 'w', 'e', 'b'},
			reason:  ssh.ConnectionFailed,
			line:    "gatehouse: malformed direct-tcpip request",
		},
		{
			name:   "authenticated as no one",
			mutate: func(o *proxy.Options) { o.KeyLogins = anonymousKeys{} },
			key:    func(t *testing.T, _ *bastion) ssh.Signer { return sshtest.NewSigner(t) },
			payload: ssh.Marshal(struct {
				Host     string
				Port     uint32
				OrigHost string
				OrigPort uint32
			}{"web-1", 22, "127.0.0.1", 40000}),
			reason: ssh.Prohibited,
			line:   "gatehouse: not authenticated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			az := proxytest.NewAuthorizer()
			az.Allow(proxytest.Any, proxytest.Any, proxytest.Any, proxy.Verdict{})
			b := fakeBastion(t, az, tc.mutate)
			outer, err := b.dialBastionWith(t, "bob", tc.key(t, b))
			if err != nil {
				t.Fatal(err)
			}
			defer outer.Close()
			_, _, err = outer.OpenChannel("direct-tcpip", tc.payload)
			wantOpenRefused(t, err, tc.reason, tc.line)
			if az.Asked() != 0 || b.audit.Count("session.denied") != 0 || len(b.node.Logins()) != 0 {
				t.Errorf("a refused tunnel went on: authorizer asked %d times, %d session.denied, %d node logins",
					az.Asked(), b.audit.Count("session.denied"), len(b.node.Logins()))
			}
		})
	}
}

// Channels the client opens on an allowed jump that the bastion, or the
// node behind it, will not open: refused with one line, and a port
// forward outside the verdict on record.
func TestInnerChannelRefusals(t *testing.T) {
	tests := []struct {
		name   string
		open   func(t *testing.T, inner *ssh.Client) error
		reason ssh.RejectionReason
		line   string
		denied map[string]any // the port_forward "denied" event's fields; nil: none
	}{
		{
			name: "local port forward outside the verdict",
			open: func(_ *testing.T, inner *ssh.Client) error {
				_, err := inner.Dial("tcp", "127.0.0.1:9")
				return err
			},
			reason: ssh.Prohibited,
			line:   "gatehouse: port forwarding is not allowed for bob as ubuntu on web-1",
			denied: map[string]any{"direction": "local", "login": "ubuntu", "host": "127.0.0.1", "port": uint32(9)},
		},
		{
			name: "unsupported channel type",
			open: func(_ *testing.T, inner *ssh.Client) error {
				_, _, err := inner.OpenChannel("x11", ssh.Marshal(struct {
					Host string
					Port uint32
				}{"127.0.0.1", 6010}))
				return err
			},
			reason: ssh.UnknownChannelType,
			line:   "gatehouse: unsupported channel type x11",
		},
		{
			// The node allows one session per connection (sshd's
			// MaxSessions 1); a multiplexing client asks for a second.
			name: "node refuses the session",
			open: func(t *testing.T, inner *ssh.Client) error {
				first, err := inner.NewSession()
				if err != nil {
					t.Fatalf("first session: %v", err)
				}
				defer first.Close()
				_, err = inner.NewSession()
				return err
			},
			reason: ssh.ConnectionFailed,
			line:   `gatehouse: node refused the session: ssh: rejected: administratively prohibited ("open failed")`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _, inner := allowedJump(t, proxy.Verdict{}, func(o *sshtest.Options) { o.MaxSessions = 1 })
			wantOpenRefused(t, tc.open(t, inner), tc.reason, tc.line)
			if tc.denied == nil {
				if n := b.audit.Count("port_forward"); n != 0 {
					t.Errorf("%d port_forward events", n)
				}
				return
			}
			ev := b.audit.Wait(t, "port_forward", 1)[0]
			if ev.Outcome != "denied" || ev.Actor != "bob" || ev.Target != "web-1" {
				t.Errorf("port_forward: %+v", ev)
			}
			wantFields(t, ev, tc.denied)
		})
	}
}

// The client chooses the login and the channel type; a refusal that
// repeats them shows them escaped, on one line, as every UserError line
// is terminal-safe.
func TestChannelRefusalsEscapeTheClientsWords(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", proxytest.Any, "web-1", proxy.Verdict{})
	mem := &memAudit{}
	b := harness{az: az, aud: mem, mem: mem, node: func(o *sshtest.Options) { o.Logins = nil }}.start(t)
	for name, attack := range termsafetest.Attacks {
		inner, closeAll, err := b.dialInner(t, "bob", attack)
		if err != nil {
			t.Fatalf("%s: jump: %v", name, err)
		}
		_, fwdErr := inner.Dial("tcp", "127.0.0.1:9")
		_, _, typeErr := inner.OpenChannel(attack, nil)
		closeAll()
		for what, err := range map[string]error{"port forward as the login": fwdErr, "channel type": typeErr} {
			var oce *ssh.OpenChannelError
			if !errors.As(err, &oce) {
				t.Errorf("%s, %s: want a refused channel, got %v", name, what, err)
				continue
			}
			termsafetest.Inert(t, name+", "+what, oce.Message)
			if strings.Contains(oce.Message, "\n") {
				t.Errorf("%s, %s: %q is more than one line", name, what, oce.Message)
			}
		}
	}
}

// A remote forward (ssh -R) outside the verdict is refused at the
// request, and on record.
func TestRemoteForwardOutsideTheVerdict(t *testing.T) {
	b, _, inner := allowedJump(t, proxy.Verdict{}, nil)
	if ln, err := inner.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Fatal("a remote forward was set up although the verdict does not allow port forwarding")
	}
	ev := b.audit.Wait(t, "port_forward", 1)[0]
	if ev.Outcome != "denied" || ev.Actor != "bob" || ev.Target != "web-1" {
		t.Errorf("port_forward: %+v", ev)
	}
	wantFields(t, ev, map[string]any{"direction": "remote", "login": "ubuntu"})
}

// A remote forward set up while the verdict allowed it carries
// connections to the client; once a re-check takes port forwarding away,
// the node's next forwarded-tcpip channel is refused (the node is told
// "not permitted") and nothing reaches the client.
func TestRemoteForwardEndsWithTheVerdict(t *testing.T) {
	b, az, inner := allowedJump(t, proxy.Verdict{PortForwarding: true}, nil)
	ln, err := inner.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("remote forward: %v", err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			_, _ = c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	// readAll connects to the node's forwarded port: what comes back.
	readAll := func() string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		return string(got)
	}

	if got := readAll(); got != "hello\n" {
		t.Fatalf("while allowed, the forwarded connection read %q", got)
	}
	<-accepted
	az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
	if n := b.srv.Recheck(context.Background(), "", ""); n != 0 {
		t.Fatalf("Recheck closed %d connections; access itself is still allowed", n)
	}
	if got := readAll(); got != "" {
		t.Errorf("after the re-check, the forwarded connection read %q", got)
	}
	refused := b.node.Refused()
	if len(refused) != 1 {
		t.Fatalf("the node was refused %d channels, want 1: %v", len(refused), refused)
	}
	wantOpenRefused(t, refused[0], ssh.Prohibited, "gatehouse: not permitted")
	select {
	case <-accepted:
		t.Error("a connection reached the client after port forwarding was taken away")
	default:
	}
}

// recordings is a RecorderFactory whose recordings keep nothing. open,
// when set, is the error opening one fails with; fail makes every
// recording opened so far report a write failure, as a full disk would.
type recordings struct {
	open  error
	mu    sync.Mutex
	onErr []func(error)
}

func (r *recordings) factory(_ string, _ proxy.RecordingHeader, onErr func(error)) (proxy.Recorder, string, error) {
	if r.open != nil {
		return nil, "", r.open
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onErr = append(r.onErr, onErr)
	return discardRecording{}, "", nil
}

func (r *recordings) fail(err error) {
	r.mu.Lock()
	fs := slices.Clone(r.onErr)
	r.mu.Unlock()
	for _, f := range fs {
		f(err)
	}
}

type discardRecording struct{}

func (discardRecording) Output([]byte)   {}
func (discardRecording) Marker(string)   {}
func (discardRecording) Input([]byte)    {}
func (discardRecording) Resize(int, int) {}
func (discardRecording) Close() error    { return nil }
func (discardRecording) Err() error      { return nil }

// A live session the bastion itself ends, not a re-check: its maximum
// length reached, or its recording failing in strict mode. The user is
// told why; the session ends as terminated. In best-effort mode a failing
// recording is on record and the session goes on.
func TestLiveSessionEndedByTheBastion(t *testing.T) {
	diskFull := errors.New("disk full")
	tests := []struct {
		name    string
		verdict proxy.Verdict
		mode    string
		fail    error  // raised in the session's recording once it runs
		notice  string // "": the session goes on
	}{
		{
			name:    "maximum session length",
			verdict: proxy.Verdict{MaxSessionTTL: 2 * time.Second},
			notice:  "gatehouse: maximum session length 2s reached; session closed",
		},
		{
			name:   "recording fails, strict",
			mode:   proxy.RecordingStrict,
			fail:   diskFull,
			notice: "gatehouse: session recording failed; session closed (recording.mode is strict)",
		},
		{
			name: "recording fails, best effort",
			mode: proxy.RecordingBestEffort,
			fail: diskFull,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			az := proxytest.NewAuthorizer()
			az.Allow("bob", "ubuntu", "web-1", tc.verdict)
			rec := &recordings{}
			b := startBastionWith(t, az, func(o *proxy.Options) { o.RecordingMode = tc.mode }, rec.factory)
			ls := startLive(t, b)
			if tc.fail != nil {
				rec.fail(tc.fail)
				ev := b.audit.Wait(t, "recording.failure", 1)[0]
				if ev.Outcome != "failure" || ev.Actor != "bob" || ev.Target != "web-1" {
					t.Errorf("recording.failure: %+v", ev)
				}
				wantFields(t, ev, map[string]any{"error": "disk full", "mode": tc.mode})
			}
			if tc.notice == "" {
				select {
				case err := <-ls.done:
					t.Fatalf("the session ended: %v (%s)", err, ls.stderr.String())
				case <-time.After(100 * time.Millisecond):
				}
				if n := len(b.srv.Live()); n != 1 {
					t.Errorf("%d live sessions, want 1", n)
				}
				return
			}
			if got := ls.ended(t); got != tc.notice {
				t.Errorf("notice %q, want %q", got, tc.notice)
			}
			end := b.audit.Wait(t, "session.end", 1)[0]
			wantFields(t, end, map[string]any{"status": "terminated"})
			if n := len(b.srv.Live()); n != 0 {
				t.Errorf("%d sessions still listed as live", n)
			}
		})
	}
}

// brokenIndex is a session index that cannot take a new session.
type brokenIndex struct{ storage.SessionStore }

func (brokenIndex) CreateSession(context.Context, storage.Session) error {
	return errors.New("database is locked")
}

// A session that cannot be recorded or indexed: in strict mode it is
// refused before it reaches the node, with what failed in the user's
// line and why in the log; in best-effort mode it runs, and what failed
// is on record (recording.failure).
func TestUnrecordableSession(t *testing.T) {
	diskFull := errors.New("disk full")
	tests := []struct {
		name  string
		setup func(o *proxy.Options, rec *recordings)
		what  string // what the strict refusal says failed
		cause string // what the log says
		store any    // the recording.failure event's store field; "-": no event
	}{
		{
			name:  "recording cannot be opened",
			setup: func(o *proxy.Options, rec *recordings) { rec.open = diskFull; o.Recorder = rec.factory },
			what:  "cannot open recording",
			cause: "disk full",
			store: nil,
		},
		{
			name: "raw recording cannot be opened",
			setup: func(o *proxy.Options, _ *recordings) {
				o.RawRecorder = func(string, func(int64, int64), func(error)) (proxy.RawRecorder, error) { return nil, diskFull }
			},
			what:  "cannot open raw recording",
			cause: "disk full",
			store: "raw",
		},
		{
			name:  "session cannot be indexed",
			setup: func(o *proxy.Options, _ *recordings) { o.Sessions = brokenIndex{o.Sessions} },
			what:  "cannot index session",
			cause: "database is locked",
			store: "index",
		},
	}
	for _, tc := range tests {
		for _, mode := range []string{proxy.RecordingStrict, proxy.RecordingBestEffort} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				log := &proxytest.Log{}
				b := startBastion(t, func(o *proxy.Options) {
					o.RecordingMode, o.Logger = mode, log.Logger()
					tc.setup(o, &recordings{})
				}, nil)
				o := b.run(t, "bob", "ubuntu", "web-1", "echo REACHED")
				if mode == proxy.RecordingBestEffort {
					if o.err != nil || o.stdout != "REACHED\n" {
						t.Errorf("best effort: the session did not run: %+v", o)
					}
				} else {
					line := "gatehouse: session recording is unavailable; session refused (" + tc.what + ")"
					if o.status != 1 || o.stdout != "" || o.stderr != line+"\r\n" {
						t.Errorf("got status %d, stdout %q, stderr %q (%v)\nwant status 1 and stderr %q", o.status, o.stdout, o.stderr, o.err, line)
					}
					if n := b.audit.Count("session.start"); n != 0 {
						t.Errorf("%d session.start events for a refused session", n)
					}
					// The user gets what failed; the log gets why.
					if recs := log.Find("session refused"); len(recs) != 1 || recs[0].Attrs["user"] != "bob" ||
						!strings.HasSuffix(recs[0].Attrs["err"], ": "+tc.cause) {
						t.Errorf("logged %+v, want one session refused for bob with the cause %q", recs, tc.cause)
					}
				}
				if tc.store == "index" && mode == proxy.RecordingStrict {
					return // refused, and logged above
				}
				ev := b.audit.Wait(t, "recording.failure", 1)[0]
				if ev.Outcome != "failure" || ev.Actor != "bob" || ev.Target != "web-1" {
					t.Errorf("recording.failure: %+v", ev)
				}
				if e, _ := ev.Fields["error"].(string); !strings.HasSuffix(e, tc.cause) {
					t.Errorf("recording.failure error %q, want the cause %q", e, tc.cause)
				}
				wantFields(t, ev, map[string]any{"mode": mode, "store": tc.store})
			})
		}
	}
}

// heldNode stands between the bastion and a node and holds the first
// connection until released, so that a test can act while the bastion
// dials the node.
type heldNode struct {
	addr    string
	dialing chan struct{} // the bastion's connection arrived
	release func()
}

func holdNode(t *testing.T, node string) *heldNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	released := make(chan struct{})
	h := &heldNode{addr: ln.Addr().String(), dialing: make(chan struct{}, 1), release: sync.OnceFunc(func() { close(released) })}
	t.Cleanup(h.release)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h.dialing <- struct{}{}
		<-released
		up, err := net.Dial("tcp", node)
		if err != nil {
			return
		}
		defer up.Close()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		_, _ = io.Copy(c, up)
	}()
	return h
}

// A connection whose access is taken away while the bastion dials the
// node (the decision was made, the re-check ends it) is refused once the
// dial completes: no session reaches the node.
func TestAccessChangedWhileConnecting(t *testing.T) {
	az := proxytest.NewAuthorizer()
	az.Allow("bob", "ubuntu", "web-1", proxy.Verdict{})
	var held *heldNode
	b := fakeBastion(t, az, func(o *proxy.Options) {
		held = holdNode(t, o.Nodes[0].Address)
		o.Nodes[0].Address = held.addr
	})
	done := make(chan outcome, 1)
	go func() { done <- b.run(t, "bob", "ubuntu", "web-1", "echo REACHED") }()
	select {
	case <-held.dialing:
	case <-time.After(10 * time.Second):
		t.Fatal("the bastion never dialled the node")
	}
	az.Set("bob", "ubuntu", "web-1", proxy.Verdict{Reason: "role removed"})
	if n := b.srv.Recheck(context.Background(), "bob", ""); n != 1 {
		t.Fatalf("Recheck closed %d connections, want the one being set up", n)
	}
	held.release()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the jump did not finish")
	}
	const line = "gatehouse: your access changed while connecting; session closed"
	if o.status != 1 || o.stdout != "" || o.stderr != line+"\r\n" {
		t.Errorf("got status %d, stdout %q, stderr %q (%v)\nwant status 1 and stderr %q", o.status, o.stdout, o.stderr, o.err, line)
	}
	if n := b.audit.Count("session.start"); n != 0 {
		t.Errorf("%d session.start events", n)
	}
	ev := b.audit.Wait(t, "session.terminated", 1)[0]
	wantFields(t, ev, map[string]any{"user": "bob", "login": "ubuntu", "reason": "role removed"})
	if n := len(b.srv.Live()); n != 0 {
		t.Errorf("%d live sessions", n)
	}
}
