package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy/preauth"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Options wires a Server: what the proxy needs, not the whole
// gatehouse.yaml (package server maps the file onto it).
type Options struct {
	// Nodes is the inventory: the only nodes a jump may reach.
	Nodes Inventory
	// HostNames are the names and addresses the bastion is reached by; its
	// host certificate lists them all, and localhost and 127.0.0.1.
	HostNames []string
	// Address is the bastion's SSH address as users type it, for the
	// banner's "Connect with" line.
	Address string
	// BastionID names this bastion in the session index.
	BastionID string
	// RecordingMode is RecordingStrict (a session whose recording cannot
	// be written ends) or RecordingBestEffort (it goes on, and the failure
	// is audited); empty means strict.
	RecordingMode string
	Timeouts      Timeouts
	// PreAuth limits connections that have not authenticated yet.
	// Required: Full must be at least 1.
	PreAuth preauth.Config

	CA         *ca.Authority
	Authorizer Authorizer
	Sessions   storage.SessionStore
	Audit      Auditor
	// Recorder opens session recordings; nil disables recording.
	Recorder RecorderFactory
	// RawRecorder opens the raw store of sessions without a pty; nil
	// disables it.
	RawRecorder RawRecorderFactory
	// KeyLogins enables OIDC-backed plain keys; nil accepts only certificates.
	KeyLogins KeyLogins
	// Commands maps bastion command names to handlers.
	Commands map[string]Command
	Logger   *slog.Logger
	// PreAuthReportEvery is how often refused unauthenticated connections
	// are summarised in the audit log; default one minute.
	PreAuthReportEvery time.Duration
	// Observer is told about connections, decisions, dials and relayed
	// bytes (metrics); nil observes nothing.
	Observer Observer
}

// Recording modes (recording.mode in gatehouse.yaml).
const (
	RecordingStrict     = "strict"
	RecordingBestEffort = "best-effort"
)

// Timeouts bound the stages of a connection. A zero field takes its
// default.
type Timeouts struct {
	// LoginGrace is how long a connection has to authenticate, and a
	// jump's inner connection to finish its handshake; default 30s.
	LoginGrace time.Duration
	// Version is how long a new connection has to send its SSH version
	// line; default 10s, at most LoginGrace.
	Version time.Duration
	// NodeDial bounds connecting to a node and the SSH handshake with it;
	// default 10s.
	NodeDial time.Duration
	// NodeCertTTL is the validity of the certificate presented to a node;
	// default 5m.
	NodeCertTTL time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.LoginGrace, 30*time.Second)
	def(&t.Version, min(10*time.Second, t.LoginGrace))
	t.Version = min(t.Version, t.LoginGrace)
	def(&t.NodeDial, 10*time.Second)
	def(&t.NodeCertTTL, 5*time.Minute)
	return t
}

// Inventory is the nodes a jump may reach.
type Inventory []config.Node

// Node returns the inventory entry named name.
func (inv Inventory) Node(name string) (config.Node, bool) {
	for _, n := range inv {
		if n.Name == name {
			return n, true
		}
	}
	return config.Node{}, false
}

// Server is the bastion's SSH side.
type Server struct {
	opt   Options
	log   *slog.Logger
	srv   *gliderssh.Server
	live  *registry
	limit *preauth.Limiter
	// finalizers bounds how many recordings are closed (drained and
	// synced) at once.
	finalizers chan struct{}

	wg sync.WaitGroup
}

// Modern algorithms only. x/crypto negotiates strict KEX (Terrapin
// countermeasure) automatically with peers that offer it.
var (
	kexAlgos    = []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org"}
	cipherAlgos = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES128CTR, ssh.CipherAES256CTR}
	macAlgos    = []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM}
)

func modernConfig() ssh.Config {
	return ssh.Config{KeyExchanges: kexAlgos, Ciphers: cipherAlgos, MACs: macAlgos}
}

// ctxKeyAwaitLogin marks a connection waiting for a browser login; its
// value is the time.Time until which the pre-auth timeout is extended.
type ctxKey string

const ctxKeyAwaitLogin ctxKey = "gatehouse-await-login"

// loginURLWait bounds how long a connection may wait on a login URL (the
// code itself expires after five minutes).
const loginURLWait = 5*time.Minute + 30*time.Second

// Extension keys carrying the authenticated identity in ssh.Permissions.
const (
	extUser    = "gatehouse-user"
	extLoginID = "gatehouse-login-id"
	extKeyFP   = "gatehouse-key-fp"
	extMethod  = "gatehouse-method"
	extClaims  = "gatehouse-claims"
	extExpires = "gatehouse-expires" // unix seconds
)

// New builds a Server; call Serve to accept connections.
func New(opt Options) (*Server, error) {
	if opt.CA == nil || opt.Authorizer == nil || opt.Audit == nil || opt.Sessions == nil {
		return nil, errors.New("proxy: CA, Authorizer, Sessions and Audit are required")
	}
	switch opt.RecordingMode {
	case "":
		opt.RecordingMode = RecordingStrict
	case RecordingStrict, RecordingBestEffort:
	default:
		return nil, fmt.Errorf("proxy: recording mode %q: want %s or %s", opt.RecordingMode, RecordingStrict, RecordingBestEffort)
	}
	opt.Timeouts = opt.Timeouts.withDefaults()
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.PreAuthReportEvery <= 0 {
		opt.PreAuthReportEvery = preAuthReportEvery
	}
	limit, err := newLimiter(opt.PreAuth)
	if err != nil {
		return nil, err
	}
	s := &Server{opt: opt, log: opt.Logger, live: newRegistry(), limit: limit, finalizers: make(chan struct{}, 2)}
	hostSigner, err := opt.CA.BastionSigner(bastionNames(opt.HostNames))
	if err != nil {
		return nil, err
	}
	s.srv = &gliderssh.Server{
		Version:     "Gatehouse",
		HostSigners: []gliderssh.Signer{hostSigner, opt.CA.HostKey()},
		// Our own PublicKeyCallback lives in ServerConfigCallback so that it
		// can return per-key Permissions and multi-step auth; a non-nil
		// KeyboardInteractiveHandler keeps gliderlabs from enabling NoClientAuth.
		ServerConfigCallback:       s.serverConfig,
		KeyboardInteractiveHandler: func(gliderssh.Context, ssh.KeyboardInteractiveChallenge) bool { return false },
		ConnCallback:               s.connCallback,
		ConnectionFailedCallback:   s.connFailed,
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"session":      gliderssh.DefaultSessionHandler,
			"direct-tcpip": s.handleJump,
		},
		RequestHandlers: map[string]gliderssh.RequestHandler{},
		Handler:         s.bastionSession,
	}
	return s, nil
}

// bastionNames is names without repeats, then localhost and 127.0.0.1.
func bastionNames(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range append(slices.Clip(names), "localhost", "127.0.0.1") {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func (s *Server) serverConfig(ctx gliderssh.Context) *ssh.ServerConfig {
	c := &ssh.ServerConfig{Config: modernConfig()}
	c.PublicKeyCallback = func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		return s.authPublicKey(ctx, meta, key)
	}
	if p, ok := ctx.Value(ctxKeyPending).(*pendingConn); ok {
		c.AuthLogCallback = func(_ ssh.ConnMetadata, method string, err error) { p.authLog(method, err) }
	}
	return c
}

// authPublicKey decides one offered key. It returns fresh Permissions that
// carry the identity this key proves; x/crypto keeps the Permissions of the
// key that actually completed authentication.
func (s *Server) authPublicKey(ctx context.Context, meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	perms, err := s.checkPublicKey(ctx, meta, key)
	var partial *ssh.PartialSuccessError
	if err != nil && !errors.As(err, &partial) {
		// x/crypto caches each key's result, so this is one event per key
		// offered, not per round trip.
		s.audit(ctx, storage.Event{Type: audit.TypeAuthFailure, Actor: meta.User(), Target: "bastion", Outcome: "failure",
			Fields: map[string]any{"method": "publickey", "key_fp": ssh.FingerprintSHA256(key), "key_type": key.Type(),
				"remote": meta.RemoteAddr().String(), "reason": err.Error()}})
	}
	return perms, err
}

// checkPublicKey's errors go to the log and the audit log only: SSH tells
// a client no more than that a key was not accepted.
func (s *Server) checkPublicKey(ctx context.Context, meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	fp := ssh.FingerprintSHA256(key)
	if cert, ok := key.(*ssh.Certificate); ok {
		if _, err := s.opt.CA.CheckUserCert(cert, meta.User()); err != nil {
			s.log.Info("certificate refused", "user", meta.User(), "key", fp, "remote", meta.RemoteAddr().String(), "err", err)
			return nil, err
		}
		if err := ca.CheckSourceAddress(cert, meta.RemoteAddr()); err != nil {
			return nil, err
		}
		loginID := keyIDField(cert.KeyId, "login")
		if loginID != "" {
			if s.opt.KeyLogins == nil {
				return nil, errors.New("OIDC login certificates are not accepted (no oidc configured)")
			}
			id, ok, err := s.opt.KeyLogins.CertLogin(ctx, loginID)
			if err != nil {
				return nil, fmt.Errorf("check login %s: %w", loginID, err)
			}
			if !ok || id.User != meta.User() {
				return nil, fmt.Errorf("login %s was revoked or has expired", loginID)
			}
			id.LoginID, id.KeyFP, id.Method = loginID, ssh.FingerprintSHA256(cert.Key), "certificate"
			id.Expires = earliest(id.Expires, certEnd(cert))
			return identityPerms(id), nil
		}
		return identityPerms(Identity{User: meta.User(), KeyFP: ssh.FingerprintSHA256(cert.Key), Method: "certificate", Expires: certEnd(cert)}), nil
	}
	if s.opt.KeyLogins == nil {
		return nil, errors.New("only Gatehouse certificates are accepted")
	}
	id, ok, err := s.opt.KeyLogins.LoginByKey(ctx, fp)
	if err != nil {
		return nil, fmt.Errorf("look up key: %w", err)
	}
	if ok {
		id.KeyFP, id.Method = fp, "oidc-key"
		return identityPerms(id), nil
	}
	// Unknown key: prove possession first (publickey), then run the
	// browser login as a keyboard-interactive second step.
	remote := meta.RemoteAddr().String()
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(meta ssh.ConnMetadata, challenge ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			prompt, wait, err := s.opt.KeyLogins.StartLogin(ctx, fp, remote)
			if err != nil {
				return nil, fmt.Errorf("start login: %w", err)
			}
			// A person is now logging in in a browser: give them the
			// code's lifetime, not the login grace time.
			if gctx, ok := ctx.(gliderssh.Context); ok {
				gctx.SetValue(ctxKeyAwaitLogin, time.Now().Add(loginURLWait))
			}
			// An instruction with no questions shows the text and returns
			// at once; then block until the browser confirms.
			if _, err := challenge("", prompt+"\n", nil, nil); err != nil {
				return nil, err
			}
			id, err := wait(ctx)
			if err != nil {
				return nil, fmt.Errorf("login: %w", err)
			}
			id.KeyFP, id.Method = fp, "oidc-key"
			_, _ = challenge("", "gatehouse: logged in as "+id.User+"\n", nil, nil)
			return identityPerms(id), nil
		},
	}}
}

// certEnd is when cert stops being valid; zero for a certificate that
// never expires.
func certEnd(cert *ssh.Certificate) time.Time {
	if cert.ValidBefore == ssh.CertTimeInfinity || cert.ValidBefore > 1<<62 {
		return time.Time{}
	}
	return time.Unix(int64(cert.ValidBefore), 0)
}

// earliest is the earlier of two ends, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func identityPerms(id Identity) *ssh.Permissions {
	ext := map[string]string{extUser: id.User, extLoginID: id.LoginID, extKeyFP: id.KeyFP, extMethod: id.Method}
	if !id.Expires.IsZero() {
		ext[extExpires] = strconv.FormatInt(id.Expires.Unix(), 10)
	}
	if len(id.Claims) > 0 {
		b, _ := json.Marshal(id.Claims)
		ext[extClaims] = string(b)
	}
	return &ssh.Permissions{Extensions: ext}
}

// identityOf reads the identity proven by the completed authentication.
func identityOf(conn *ssh.ServerConn) (Identity, bool) {
	if conn == nil || conn.Permissions == nil {
		return Identity{}, false
	}
	e := conn.Permissions.Extensions
	u := e[extUser]
	if u == "" {
		return Identity{}, false
	}
	id := Identity{User: u, LoginID: e[extLoginID], KeyFP: e[extKeyFP], Method: e[extMethod]}
	if n, err := strconv.ParseInt(e[extExpires], 10, 64); err == nil {
		id.Expires = time.Unix(n, 0)
	}
	if c := e[extClaims]; c != "" {
		_ = json.Unmarshal([]byte(c), &id.Claims)
	}
	return id, true
}

// keyIDField extracts "name=value" from a space-separated certificate key id.
func keyIDField(keyID, name string) string {
	for _, f := range strings.Fields(keyID) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

func (s *Server) connFailed(conn net.Conn, err error) {
	// Refused keys are audited where they are refused; this is the
	// transport-level rest (scanners, timeouts, clients giving up).
	s.observer().Connection("failed")
	s.log.Debug("ssh connection failed", "remote", conn.RemoteAddr().String(), "err", err)
}

// shutdownGrace is how long a shutdown waits after telling live sessions
// before it cuts the connections that are left.
const shutdownGrace = 500 * time.Millisecond

// shuttingDown ends every live session when the bastion stops.
func shuttingDown() *UserError { return userErrorf("bastion shutting down; session closed") }

// Serve accepts connections on ln until ctx is cancelled.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// The last summary of refused connections is written when Serve
	// returns, however it returns.
	rctx, stopReports := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		s.reportPreAuth(rctx, s.opt.PreAuthReportEvery)
	}()
	defer func() { stopReports(); <-reported }()
	cut := make(chan struct{}) // closed once every connection is cut
	go func() {
		defer close(cut)
		<-ctx.Done()
		// Tell live sessions first: closing the server cuts every
		// connection at once, and the notice would never arrive.
		if s.live.closeAll(shuttingDown()) > 0 {
			// Each connection closes once its notices are out; Shutdown
			// stops accepting and gives clients a moment to go.
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			_ = s.srv.Shutdown(sctx)
			cancel()
		}
		_ = s.srv.Close()
	}()
	err := s.srv.Serve(&admissionListener{Listener: ln, s: s})
	if errors.Is(err, gliderssh.ErrServerClosed) {
		// Shutdown closed the listener; wait for the connections' cut.
		<-cut
		err = nil
	}
	// Connections that got in while the notices went out were cut
	// without one; mark them closed.
	s.live.closeAll(shuttingDown())
	// Sessions end at once; closing their recordings (draining queues,
	// syncing) may take longer. Don't hold shutdown hostage: an unfinished
	// recording keeps the segments already written, as after a crash.
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("shutdown: some recordings are still being closed; they keep what was written")
	}
	return err
}

// audit records ev; a failure is logged by audit.Append.
func (s *Server) audit(ctx context.Context, ev storage.Event) { _ = s.auditAll(ctx, ev) }

// auditAll appends evs in order (on a session's setup path, one durable
// commit) and returns a failure, for callers that must not go on without
// the record. It outlives ctx, bounded by audit.AppendTimeout.
func (s *Server) auditAll(ctx context.Context, evs ...storage.Event) error {
	return audit.Append(ctx, s.opt.Audit, s.log, evs...)
}
