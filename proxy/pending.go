package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/proxy/preauth"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Everything between accepting a connection and its authentication: the
// admission decision (package preauth), the version and grace deadlines,
// how the connection ended, and the rate-limited record of what was
// refused.

// ctxKeyPending holds a connection's *pendingConn.
const ctxKeyPending ctxKey = "gatehouse-pending"

// preAuthReportEvery is how often refused connections are summarised in
// one audit event; penaltyEventsPerReport bounds the individual audit
// events for sources penalised within one such period.
const (
	preAuthReportEvery     = time.Minute
	penaltyEventsPerReport = 20
)

// newLimiter builds the admission limiter; how many penalties get an
// audit event of their own follows the report period, so it is set here.
func newLimiter(c preauth.Config) (*preauth.Limiter, error) {
	if c.PenaltyEvents == 0 {
		c.PenaltyEvents = penaltyEventsPerReport
	}
	l, err := preauth.New(c)
	if err != nil {
		return nil, fmt.Errorf("proxy: pre-authentication limits: %w", err)
	}
	return l, nil
}

// pendingConn follows one admitted connection until it authenticates or
// ends. One timer serves both deadlines (version line, then login grace),
// so a connection costs no goroutine of its own while it waits.
type pendingConn struct {
	s      *Server
	ctx    gliderssh.Context
	ticket *preauth.Ticket
	raw    net.Conn
	start  time.Time
	grace  time.Duration

	mu    sync.Mutex // guards timer: it may fire before AfterFunc returns
	timer *time.Timer

	banner     preauth.BannerScanner // only the handshake goroutine reads before the banner
	bannerDone atomic.Bool
	received   atomic.Bool
	authFailed atomic.Bool
	finished   atomic.Bool
}

// admissionListener decides on each connection as it is accepted. A
// refused one is closed right there: it never costs a goroutine, a context
// or a handshake, so a flood of them costs little more than the accepts.
type admissionListener struct {
	net.Listener
	s *Server
}

func (l *admissionListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ac := l.s.admit(c); ac != nil {
			return ac, nil
		}
	}
}

// admittedConn is an accepted connection and its place among the
// unauthenticated ones.
type admittedConn struct {
	net.Conn
	ticket *preauth.Ticket
}

// admit applies the per-source cap, random early drop and penalties to a
// new connection; it closes a refused one and returns nil.
func (s *Server) admit(c net.Conn) *admittedConn {
	ticket, reason := s.limit.Admit(addrOf(c.RemoteAddr()))
	if ticket == nil {
		// Not logged one by one above debug: the attacker sets this rate.
		// The summary (reportPreAuth) has them.
		s.log.Debug("unauthenticated connection refused", "remote", c.RemoteAddr().String(), "reason", reason.String())
		s.observer().Connection("rejected")
		c.Close()
		return nil
	}
	return &admittedConn{Conn: c, ticket: ticket}
}

// connCallback starts an admitted connection's deadlines and watches it
// until it authenticates or ends.
func (s *Server) connCallback(ctx gliderssh.Context, conn net.Conn) net.Conn {
	ac, ok := conn.(*admittedConn)
	if !ok {
		// Not from Serve's listener: admit it here.
		if ac = s.admit(conn); ac == nil {
			return nil
		}
	}
	grace, version := s.opt.Timeouts.LoginGrace, s.opt.Timeouts.Version
	p := &pendingConn{s: s, ctx: ctx, ticket: ac.ticket, raw: ac.Conn, start: time.Now(), grace: grace}
	ctx.SetValue(ctxKeyPending, p)
	p.mu.Lock()
	p.timer = time.AfterFunc(version, p.expire)
	p.mu.Unlock()
	return newQueuedConn(&watchedConn{Conn: ac.Conn, p: p})
}

func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{} // one "unknown" source for all of these
	}
	return ap.Addr()
}

// expire runs when a deadline passes: the version deadline first, then the
// login grace time, extended while a person completes a browser login.
func (p *pendingConn) expire() {
	if p.finished.Load() {
		return
	}
	if !p.bannerDone.Load() {
		p.s.log.Debug("no SSH version line within the version deadline", "remote", p.raw.RemoteAddr().String())
		if p.received.Load() {
			p.end(preauth.Invalid) // lines, but none of them SSH (an HTTP request, say)
		} else {
			p.end(preauth.VersionTimeout)
		}
		p.raw.Close()
		return
	}
	now := time.Now()
	deadline := p.start.Add(p.grace)
	if until, ok := p.ctx.Value(ctxKeyAwaitLogin).(time.Time); ok && until.After(deadline) {
		deadline = until
	}
	if now.Before(deadline) {
		p.mu.Lock()
		p.timer.Reset(deadline.Sub(now))
		p.mu.Unlock()
		return
	}
	p.s.log.Info("login grace time exceeded", "remote", p.raw.RemoteAddr().String())
	p.end(preauth.GraceExceeded)
	p.s.observer().Connection("timeout")
	p.raw.Close()
}

// authLog sees every authentication attempt (x/crypto's AuthLogCallback).
func (p *pendingConn) authLog(method string, err error) {
	var partial *ssh.PartialSuccessError
	switch {
	case err == nil:
		if p.end(preauth.Authenticated) {
			p.s.observer().Connection("authenticated")
			go p.s.auditAuthSuccess(p.ctx, p.raw.RemoteAddr().String())
		}
	case method == "none" || errors.As(err, &partial):
		// "none" is how every client asks which methods there are; a
		// partial success is a step forward.
	default:
		p.authFailed.Store(true)
	}
}

// closed runs when the connection is closed; if it never authenticated,
// how far it got says how it ended.
func (p *pendingConn) closed() {
	switch {
	case p.authFailed.Load():
		p.end(preauth.AuthFail)
	case !p.bannerDone.Load() && p.received.Load():
		p.end(preauth.Invalid)
	default:
		p.end(preauth.NoAuth)
	}
}

// end gives the connection's admission back, once; it reports whether this
// call did.
func (p *pendingConn) end(o preauth.Outcome) bool {
	if p.finished.Swap(true) {
		return false
	}
	p.mu.Lock()
	p.timer.Stop()
	p.mu.Unlock()
	if imp := p.ticket.Done(o); imp != nil {
		p.s.penalised(imp)
	}
	return true
}

// watchedConn tells its pendingConn when the client's version line has
// arrived and when the connection is closed.
type watchedConn struct {
	net.Conn
	p *pendingConn
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.p.bannerDone.Load() {
		c.p.received.Store(true)
		if c.p.banner.Feed(b[:n]) {
			c.p.bannerDone.Store(true)
		}
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.p.closed()
	return c.Conn.Close()
}

// auditAuthSuccess records who authenticated. x/crypto reports success
// (AuthLogCallback) before gliderlabs publishes the ServerConn whose
// Permissions say who it was, which it does as soon as the handshake
// returns; this waits for that, briefly, on a goroutine of its own.
func (s *Server) auditAuthSuccess(ctx gliderssh.Context, remote string) {
	wait := time.Millisecond
	for {
		done := ctx.Err() != nil
		if sc, ok := ctx.Value(gliderssh.ContextKeyConn).(*ssh.ServerConn); ok {
			if id, ok := identityOf(sc); ok {
				s.audit(context.Background(), storage.Event{Type: audit.TypeAuthSuccess, Actor: id.User, Target: "bastion",
					Fields: map[string]any{"method": id.Method, "key_fp": id.KeyFP, "login_id": id.LoginID,
						"remote": remote, "client": string(sc.ClientVersion())}})
			}
			return
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// penalised records a source that is now refused. Beyond the budget of
// individual events per report period, the report counts them.
func (s *Server) penalised(imp *preauth.Imposed) {
	if !imp.Audit {
		return
	}
	src := preauth.FormatSource(imp.Source)
	until := imp.Until.UTC().Truncate(time.Second)
	s.log.Warn("refusing a source's connections for a while (per-source penalty)", "source", src, "after", imp.Outcome.String(), "until", until)
	s.audit(context.Background(), storage.Event{Type: audit.TypePreAuthPenalty, Target: "bastion", Outcome: "failure",
		Fields: map[string]any{"source": src, "reason": imp.Outcome.String(), "until": until.Format(time.RFC3339)}})
}

// reportPreAuth writes a summary of refused connections every period that
// had any, and a last one when ctx ends.
func (s *Server) reportPreAuth(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushPreAuthReport()
			return
		case <-t.C:
			s.flushPreAuthReport()
		}
	}
}

func (s *Server) flushPreAuthReport() {
	r := s.limit.TakeReport()
	if r.Empty() {
		return
	}
	byReason := map[string]any{}
	for k, v := range r.Dropped {
		byReason[k] = v
	}
	sources := map[string]any{}
	for _, sc := range r.Sources {
		sources[preauth.FormatSource(sc.Source)] = sc.Dropped
	}
	fields := map[string]any{
		"dropped": r.Total, "by_reason": byReason, "sources": sources, "other_sources": r.OtherSources,
		"penalties_imposed": r.PenaltiesImposed, "penalties_unaudited": r.PenaltiesUnaudited,
		"penalty_overflow": r.PenaltyOverflow, "period_seconds": int64(r.End.Sub(r.Start).Round(time.Second) / time.Second),
	}
	s.log.Warn("unauthenticated connections refused", "dropped", r.Total, "by_reason", r.Dropped,
		"penalties_imposed", r.PenaltiesImposed, "period", r.End.Sub(r.Start).Round(time.Second))
	s.audit(context.Background(), storage.Event{Type: audit.TypePreAuthDropped, Target: "bastion", Outcome: "failure", Fields: fields})
}

// Stats are the Server's counters, for metrics.
type Stats struct {
	// PreAuth counts connections before authentication: admitted,
	// refused by reason, ended by outcome, penalties.
	PreAuth preauth.Stats
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats { return Stats{PreAuth: s.limit.Stats()} }
