package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// directTCPIP is the RFC 4254 direct-tcpip open payload.
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handleJump serves `ssh -J bastion node`: the client's direct-tcpip channel
// to the node becomes the transport of an SSH connection that Gatehouse
// terminates itself.
func (s *Server) handleJump(_ *gliderssh.Server, conn *ssh.ServerConn, newCh ssh.NewChannel, ctx gliderssh.Context) {
	id, ok := identityOf(conn)
	if !ok {
		rejectChannel(newCh, ssh.Prohibited, userErrorf("not authenticated"))
		return
	}
	var req directTCPIP
	if err := ssh.Unmarshal(newCh.ExtraData(), &req); err != nil {
		rejectChannel(newCh, ssh.ConnectionFailed, userErrorf("malformed direct-tcpip request"))
		return
	}
	node, ok := s.opt.Nodes.Node(req.Host)
	if !ok {
		s.audit(ctx, storage.Event{Type: audit.TypeSessionDenied, Actor: id.User, Target: req.Host, Outcome: "denied",
			Fields: map[string]any{"reason": "unknown node", "remote": conn.RemoteAddr().String()}})
		rejectChannel(newCh, ssh.Prohibited, userErrorf("unknown node %s (see: ssh %s@bastion nodes)", termsafe.Quote(req.Host), termsafe.String(id.User)))
		return
	}
	// Even a refusal that needs no login (a locked user) is decided after
	// the inner handshake and delivered as the session's only output: a
	// rejected channel reaches an OpenSSH user as "open failed ... stdio
	// forwarding failed" and the client's own kex errors after it.
	ch, reqs, err := newCh.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveInner(ctx, id, node, conn.RemoteAddr().String(), &channelConn{Channel: ch, local: conn.LocalAddr(), remote: conn.RemoteAddr()})
	}()
}

// Extension keys of the inner connection's Permissions. They record how the
// client went through the inner hop's authentication, for the audit log
// only: identity never comes from the inner connection.
const (
	extInnerMethod = "gatehouse-inner-method"
	extInnerKeyFP  = "gatehouse-inner-key-fp"
)

// innerServerConfig is the SSH server of a jump's inner connection, without
// host keys. Its transport is a channel of an outer connection that already
// proved who the user is, so the inner authentication has nothing left to
// prove and must not stand in the way: clients differ in the method they
// try first (OpenSSH and x/crypto "none", Paramiko its public key, others
// keyboard-interactive or a password), and whichever comes first succeeds.
// A public key is accepted whatever it is; x/crypto still answers a query
// with PK_OK and checks a signature the client chose to send. The
// keyboard-interactive callback asks nothing, and a password is ignored.
// The Permissions carry only the method seen (and the key's fingerprint);
// serveInner takes the identity from the outer connection.
func innerServerConfig() *ssh.ServerConfig {
	seen := func(method string) *ssh.Permissions {
		return &ssh.Permissions{Extensions: map[string]string{extInnerMethod: method}}
	}
	return &ssh.ServerConfig{
		Config:       modernConfig(),
		NoClientAuth: true,
		NoClientAuthCallback: func(ssh.ConnMetadata) (*ssh.Permissions, error) {
			return seen("none"), nil
		},
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			// Fresh Permissions per key: x/crypto keeps those of the key
			// that completed authentication (CVE-2024-45337).
			p := seen("publickey")
			if cert, ok := key.(*ssh.Certificate); ok {
				key = cert.Key
			}
			p.Extensions[extInnerKeyFP] = ssh.FingerprintSHA256(key)
			return p, nil
		},
		KeyboardInteractiveCallback: func(ssh.ConnMetadata, ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return seen("keyboard-interactive"), nil
		},
		PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
			return seen("password"), nil
		},
		ServerVersion: "SSH-2.0-Gatehouse",
	}
}

// innerAuth is how the client went through the inner connection's
// authentication, for the audit log.
type innerAuth struct {
	method string // none, publickey, keyboard-interactive, password
	keyFP  string // for publickey: the key's fingerprint (a certificate's inner key)
}

func innerAuthOf(conn *ssh.ServerConn) innerAuth {
	if conn.Permissions == nil || conn.Permissions.Extensions[extInnerMethod] == "" {
		return innerAuth{method: "unknown"}
	}
	e := conn.Permissions.Extensions
	return innerAuth{method: e[extInnerMethod], keyFP: e[extInnerKeyFP]}
}

// addTo records the method in an audit event's fields.
func (a innerAuth) addTo(fields map[string]any) map[string]any {
	fields["inner_auth"] = a.method
	if a.keyFP != "" {
		fields["inner_key_fp"] = a.keyFP
	}
	return fields
}

// serveInner runs the terminated SSH connection for one jump.
func (s *Server) serveInner(ctx context.Context, id Identity, node config.Node, remote string, transport net.Conn) {
	defer transport.Close()
	hostSigner, err := s.opt.CA.HostSigner(node.Name)
	if err != nil {
		s.log.Error("host certificate", "node", node.Name, "err", err)
		return
	}
	cfg := innerServerConfig()
	cfg.AddHostKey(hostSigner)
	handshakeDone := make(chan struct{})
	grace := time.AfterFunc(s.opt.Timeouts.LoginGrace, func() {
		select {
		case <-handshakeDone:
		default:
			transport.Close()
		}
	})
	inner, chans, greqs, err := ssh.NewServerConn(transport, cfg)
	close(handshakeDone)
	grace.Stop()
	if err != nil {
		s.log.Debug("inner handshake failed", "user", id.User, "node", node.Name, "err", err)
		return
	}
	defer inner.Close()
	login := inner.User()
	seenAuth := innerAuthOf(inner)
	lctx, end := context.WithCancelCause(ctx)
	defer end(nil)
	lc := &liveConn{id: newID(), ident: id, login: login, node: node, start: time.Now(), remote: remote, inner: inner,
		innerAuth: seenAuth, channels: map[string]*liveChannel{}, ctx: lctx, end: end}
	// Registered before the decision, so that every lock or revocation
	// announced from here on re-checks this connection too, and the
	// decision's own read of the store covers everything before.
	s.live.add(lc)
	defer s.live.remove(lc.id)

	v, err := s.opt.Authorizer.Authorize(ctx, id, login, node)
	if err != nil {
		// Fail closed: no decision, no access.
		s.log.Error("authorize", "user", id.User, "login", login, "node", node.Name, "err", err)
		v = Verdict{Allowed: false, Reason: "access could not be checked right now; try again"}
		s.observer().Decision("error")
	} else if v.Allowed {
		s.observer().Decision("allowed")
	} else {
		s.observer().Decision("denied")
	}
	lc.setVerdict(v)
	if !v.Allowed {
		// Refused: nothing left for a re-check to end.
		s.live.remove(lc.id)
		s.audit(ctx, storage.Event{Type: audit.TypeSessionDenied, Actor: id.User, Target: node.Name, Outcome: "denied",
			Fields: seenAuth.addTo(map[string]any{"login": login, "rule": v.Rule, "reason": v.Reason, "remote": remote})})
		// Request on the refused connection (jitrequest.go): it delivers
		// the refusal itself, or goes on once a request is approved.
		var ok bool
		if v, chans, greqs, ok = s.requestOnRefusal(ctx, lc, v, chans, greqs); !ok {
			return
		}
	}

	// Dial the node while the client opens its channels.
	upc := make(chan upResult, 1)
	go func() {
		start := time.Now()
		up, err := s.dialNode(ctx, id, login, node, lc.id, v)
		s.observer().NodeDialed(node.Name, time.Since(start), err)
		upc <- upResult{up, err}
	}()
	res := <-upc
	if res.err != nil {
		s.live.remove(lc.id)
		refused := &UserError{Line: fmt.Sprintf("gatehouse: cannot reach %s: %s", node.Name, userFacingDialError(res.err)), Cause: res.err}
		s.log.Warn("node dial failed", "user", id.User, "node", node.Name, "err", res.err)
		s.audit(ctx, storage.Event{Type: audit.TypeSessionDenied, Actor: id.User, Target: node.Name, Outcome: "error",
			Fields: seenAuth.addTo(map[string]any{"login": login, "error": res.err.Error()})})
		s.refuseAll(inner, chans, greqs, refused)
		return
	}
	up := res.up
	defer up.conn.Close()
	if lc.isClosed() {
		// A re-check ended the connection while the node was dialled.
		s.refuseAll(inner, chans, greqs, userErrorf("your access changed while connecting; session closed"))
		return
	}

	// From here on a termination is delivered by each session channel's
	// relay, which owns the channel; then the connection is closed.
	stopClose := context.AfterFunc(lctx, lc.closeAfterNotices)
	defer stopClose()

	var ttl *time.Timer
	if v.MaxSessionTTL > 0 {
		ttl = time.AfterFunc(v.MaxSessionTTL, func() {
			lc.terminate(userErrorf("maximum session length %s reached; session closed", v.MaxSessionTTL))
		})
		defer ttl.Stop()
	}

	var wg sync.WaitGroup
	// Close each side when the other goes away.
	go func() {
		_ = up.conn.Wait()
		inner.Close()
	}()
	go func() {
		_ = inner.Wait()
		up.conn.Close()
	}()
	wg.Add(2)
	go func() { defer wg.Done(); s.relayGlobalRequests(ctx, lc, greqs, up) }()
	go func() { defer wg.Done(); s.relayNodeChannels(ctx, lc, up) }()
	for nc := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleInnerChannel(ctx, lc, nc, up)
		}()
	}
	up.conn.Close()
	wg.Wait()
}

// isClosed reports whether the connection has been terminated.
func (c *liveConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

type upResult struct {
	up  *upstream
	err error
}

func userFacingDialError(err error) string {
	switch {
	case errors.Is(err, errHostKey):
		return "its host key does not match the one on record (refused; an operator must check the node)"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "connection timed out"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		if errors.Is(opErr.Err, syscall.ECONNREFUSED) {
			return "connection refused"
		}
		return opErr.Err.Error()
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		return "the node refused the Gatehouse certificate (is TrustedUserCAKeys set, and does the login exist?)"
	}
	return "connection failed"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refusal is what a refused user is told: one line. The login is whatever
// the client sent (`ssh -J bastion $'\e]0;x\a'@db-1`), so it is escaped.
func refusal(user, login, node string, v Verdict) *UserError {
	f := termsafe.String
	if v.Notice != "" {
		return userErrorf("%s", f(v.Notice))
	}
	msg := fmt.Sprintf("%s may not log in as %s on %s (%s)", f(user), f(login), f(node), f(v.Reason))
	if v.Hint != "" {
		msg += "; " + f(v.Hint)
	}
	return userErrorf("%s", msg)
}

// refuseAll answers every session channel with the refusal's line on
// stderr and exit status 1, rejects everything else, and ends the
// connection.
func (s *Server) refuseAll(inner *ssh.ServerConn, chans <-chan ssh.NewChannel, greqs <-chan *ssh.Request, refused *UserError) {
	go ssh.DiscardRequests(greqs)
	done := time.AfterFunc(10*time.Second, func() { inner.Close() })
	defer done.Stop()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			rejectChannel(nc, ssh.Prohibited, refused)
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			continue
		}
		// Wait for the client's shell/exec/subsystem request so that the
		// message arrives where the client expects output.
		go func() {
			for r := range reqs {
				switch r.Type {
				case "shell", "exec", "subsystem":
					_ = r.Reply(true, nil)
					_, _ = ch.Stderr().Write([]byte(refused.Line + "\r\n"))
					_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ S uint32 }{1}))
					_ = ch.Close()
				default:
					_ = r.Reply(r.Type == "pty-req" || r.Type == "env", nil)
				}
			}
		}()
	}
}

// relayGlobalRequests forwards remote-forwarding requests (ssh -R) to the
// node when policy permits; everything else is answered locally.
func (s *Server) relayGlobalRequests(ctx context.Context, lc *liveConn, reqs <-chan *ssh.Request, up *upstream) {
	for r := range reqs {
		switch r.Type {
		case "tcpip-forward", "cancel-tcpip-forward":
			if !lc.currentVerdict().PortForwarding {
				s.audit(ctx, storage.Event{Type: audit.TypePortForward, Actor: lc.ident.User, Target: lc.node.Name, Outcome: "denied",
					Fields: map[string]any{"direction": "remote", "login": lc.login}})
				_ = r.Reply(false, nil)
				continue
			}
			ok, payload, err := up.conn.SendRequest(r.Type, r.WantReply, r.Payload)
			if err != nil {
				ok = false
			}
			_ = r.Reply(ok, payload)
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

// relayNodeChannels handles channels the node opens towards the client:
// remote-forwarded connections and agent requests.
func (s *Server) relayNodeChannels(ctx context.Context, lc *liveConn, up *upstream) {
	for nc := range up.chans {
		v := lc.currentVerdict()
		switch {
		case nc.ChannelType() == "forwarded-tcpip" && v.PortForwarding,
			nc.ChannelType() == "auth-agent@openssh.com" && v.AgentForwarding:
			go s.bridgeChannel(ctx, lc, nc, lc.inner, "remote")
		default:
			rejectChannel(nc, ssh.Prohibited, userErrorf("not permitted"))
		}
	}
}

// bridgeChannel opens the same channel on the other connection and pipes it.
func (s *Server) bridgeChannel(ctx context.Context, lc *liveConn, nc ssh.NewChannel, to ssh.Conn, direction string) {
	dst, dreqs, err := to.OpenChannel(nc.ChannelType(), nc.ExtraData())
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			_ = nc.Reject(oce.Reason, oce.Message)
		} else {
			rejectChannel(nc, ssh.ConnectionFailed, asUserError(err))
		}
		return
	}
	agent := nc.ChannelType() == "auth-agent@openssh.com"
	var fwd directTCPIP
	_ = ssh.Unmarshal(nc.ExtraData(), &fwd)
	fields := func(state string) map[string]any {
		return map[string]any{"direction": direction, "login": lc.login, "host": fwd.Host, "port": fwd.Port,
			"origin": net.JoinHostPort(fwd.OrigHost, strconv.Itoa(int(fwd.OrigPort))), "client": lc.remote, "state": state}
	}
	// A tunnel's content is not recorded (it may be a whole SSH session
	// to the node's own sshd), so its target is on record before the
	// first byte moves, not only when it closes; no record, no tunnel.
	if !agent {
		if err := s.auditAll(ctx, storage.Event{Type: audit.TypePortForward, Actor: lc.ident.User, Target: lc.node.Name, Fields: fields("open")}); err != nil {
			dst.Close()
			rejectChannel(nc, ssh.Prohibited, userErrorf("the audit log is unavailable; port forward refused"))
			return
		}
	}
	src, sreqs, err := nc.Accept()
	if err != nil {
		dst.Close()
		return
	}
	start := time.Now()
	in, out := pipeChannels(src, sreqs, dst, dreqs)
	if agent {
		return
	}
	f := fields("closed")
	f["bytes_in"], f["bytes_out"], f["duration_ms"] = in, out, time.Since(start).Milliseconds()
	s.audit(ctx, storage.Event{Type: audit.TypePortForward, Actor: lc.ident.User, Target: lc.node.Name, Outcome: "success", Fields: f})
}

// channelConn adapts an SSH channel to net.Conn for the inner connection.
// Its writes need no queue of their own: the outer connection's socket
// writes are queued (queuedConn), and a queue here as well measured no
// faster.
type channelConn struct {
	ssh.Channel
	local, remote net.Addr
}

func (c *channelConn) LocalAddr() net.Addr                { return c.local }
func (c *channelConn) RemoteAddr() net.Addr               { return c.remote }
func (c *channelConn) SetDeadline(t time.Time) error      { return nil }
func (c *channelConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *channelConn) SetWriteDeadline(t time.Time) error { return nil }
