package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Request on the refused connection: a jump refused for want of a role the
// user may request is, when it asked for a terminal, answered by the
// bastion itself. The terminated inner connection stays open while the
// user files a request (jitprompt.go) and waits for the decision; once it
// is approved, the session the client opened is replayed to the node
// (its pty-req, env, agent request and shell or exec, as the client sent
// them) and relayed as any other, on the same connection, with no new
// login.

// AccessRequester is an Authorizer that can file access requests for a
// refused user. The proxy looks for it on its Authorizer; without it every
// refusal is the one line.
type AccessRequester interface {
	// RequestOptions lists the roles id may request now that would allow
	// login on node; none (or an error) means the refusal stands.
	RequestOptions(ctx context.Context, id Identity, login string, node config.Node) ([]RequestOption, error)
	// FileRequest files a request, as `request` over SSH does: audited,
	// reviewers notified. A refusal meant for the user is a *UserError.
	FileRequest(ctx context.Context, id Identity, role, reason string, d time.Duration) (FiledRequest, error)
	// AwaitRequest blocks until the request is no longer pending. Meanwhile
	// it calls progress (from its own goroutine, without blocking for
	// long) with where the request stands against its approval rule, the
	// status line of `requests ID` ("needs 1 more approval from manager"),
	// at least whenever that changes.
	AwaitRequest(ctx context.Context, id Identity, requestID string, progress func(status string)) (RequestOutcome, error)
	// CancelRequest withdraws the user's own pending request (audited).
	CancelRequest(ctx context.Context, id Identity, requestID string) error
}

// RequestOption is one role the user may request that would let them in.
type RequestOption struct {
	Role            string
	DefaultDuration time.Duration
	MaxDuration     time.Duration
	ReasonRequired  bool
}

// FiledRequest is a request just filed.
type FiledRequest struct {
	ID        string
	Roles     []string
	Duration  time.Duration
	Approvers []string // people who may review it, as far as known in advance
}

// RequestOutcome is how a request left PENDING.
type RequestOutcome struct {
	State  string // APPROVED, DENIED, EXPIRED, CANCELLED, ...
	By     string
	Reason string
}

// userDesk binds an AccessRequester to one user for the dialogue, and
// logs the failures the user is not told about.
type userDesk struct {
	ar  AccessRequester
	id  Identity
	log *slog.Logger
}

func (u userDesk) File(ctx context.Context, role, reason string, d time.Duration) (FiledRequest, error) {
	r, err := u.ar.FileRequest(ctx, u.id, role, reason, d)
	return r, u.logged("file access request", err)
}

func (u userDesk) Await(ctx context.Context, id string, progress func(status string)) (RequestOutcome, error) {
	o, err := u.ar.AwaitRequest(ctx, u.id, id, progress)
	if ctx.Err() != nil {
		return o, err // the dialogue stopped waiting
	}
	return o, u.logged("wait for access request "+id, err)
}

func (u userDesk) Cancel(ctx context.Context, id string) error {
	return u.logged("cancel access request "+id, u.ar.CancelRequest(ctx, u.id, id))
}

func (u userDesk) logged(what string, err error) error {
	var ue *UserError
	if err != nil && !errors.As(err, &ue) {
		u.log.Error(what, "user", u.id.User, "err", err)
	}
	return err
}

// heldStartWait bounds how long a refused connection waits for the client
// to open its session and start it, as refuseAll does.
const heldStartWait = 10 * time.Second

// requestOnRefusal is called by serveInner when lc's login is refused
// with v. If the user may request a role that would let them in and the
// client's first session asked for a terminal, it holds the dialogue;
// once access is granted it returns the new verdict and the client's
// channels, the held session first, and ok. Otherwise the refusal is
// delivered (one line on every session, as today) and ok is false.
func (s *Server) requestOnRefusal(ctx context.Context, lc *liveConn, v Verdict, chans <-chan ssh.NewChannel, greqs <-chan *ssh.Request) (Verdict, <-chan ssh.NewChannel, <-chan *ssh.Request, bool) {
	inner, id, login, node := lc.inner, lc.ident, lc.login, lc.node
	refused := refusal(id.User, login, node.Name, v)
	ar, ok := s.opt.Authorizer.(AccessRequester)
	if !ok || v.Rule == "" {
		// No requester, or no decision was made (the store could not be
		// read): nothing to offer.
		s.refuseAll(inner, chans, greqs, refused)
		return v, nil, nil, false
	}
	opts, err := ar.RequestOptions(ctx, id, login, node)
	if err != nil {
		s.log.Warn("requestable roles", "user", id.User, "login", login, "node", node.Name, "err", err)
	}
	if len(opts) == 0 {
		s.refuseAll(inner, chans, greqs, refused)
		return v, nil, nil, false
	}
	gr := newGate(greqs, nil)
	h, ok := holdSession(inner, chans, refused)
	if !ok {
		s.refuseAll(inner, chans, gr.out, refused)
		return v, nil, nil, false
	}
	plain := v
	plain.Hint = "" // the dialogue is the hint
	d := &requestDialog{keys: h.keys, out: h.ch, desk: userDesk{ar, id, s.log}, options: opts,
		refusal: refusal(id.User, login, node.Name, plain).Line, target: login + "@" + node.Name}
	if !d.run(ctx) {
		endChannel(h.ch, "")
		s.refuseAll(inner, chans, gr.out, refused)
		return v, nil, nil, false
	}
	// Registered before the decision, as serveInner does.
	s.live.add(lc)
	nv, err := s.opt.Authorizer.Authorize(ctx, id, login, node)
	if err != nil || !nv.Allowed {
		s.live.remove(lc.id)
		if err != nil {
			s.log.Error("authorize", "user", id.User, "login", login, "node", node.Name, "err", err)
			nv = Verdict{Reason: "access could not be checked right now; try again"}
		}
		endChannel(h.ch, refusal(id.User, login, node.Name, nv).Line)
		s.refuseAll(inner, chans, gr.out, refused)
		return v, nil, nil, false
	}
	s.observer().Decision("allowed")
	lc.setVerdict(nv)
	gr.open()
	h.reqs.open()
	all := make(chan ssh.NewChannel)
	go func() {
		defer close(all)
		all <- h
		for nc := range chans {
			all <- nc
		}
	}()
	return nv, all, gr.out, true
}

// endChannel writes msg (if any) on ch's stderr, exits 1 and closes it.
func endChannel(ch ssh.Channel, msg string) {
	if msg != "" {
		_, _ = ch.Stderr().Write([]byte(msg + "\r\n"))
	}
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ S uint32 }{1}))
	_ = ch.Close()
}

// gate holds a stream of requests while the dialogue runs, answering
// each with handle (or "no"), and passes them on to out once opened.
type gate struct {
	out    chan *ssh.Request
	opened chan struct{}
	once   sync.Once
}

func newGate(in <-chan *ssh.Request, handle func(*ssh.Request) bool) *gate {
	g := &gate{out: make(chan *ssh.Request), opened: make(chan struct{})}
	go func() {
		defer close(g.out)
		for r := range in {
			select {
			case <-g.opened:
				g.out <- r
				continue
			default:
			}
			if handle != nil && handle(r) {
				continue
			}
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// heldSession is the client's session channel while the dialogue runs:
// accepted, its requests up to the shell answered by the bastion and kept
// to be replayed to the node. It is the ssh.NewChannel the relay accepts.
type heldSession struct {
	ssh.NewChannel
	ch   ssh.Channel
	keys *keyReader
	reqs *gate

	mu      sync.Mutex
	pty     []byte         // pty-req payload, its size updated by window-change
	kept    []*ssh.Request // env and agent requests, to replay
	start   *ssh.Request   // shell or exec
	started bool
}

// holdSession waits for the client's first channel and its start. It
// returns ok only for a session that asked for a terminal and a shell or a
// command; anything else has been refused with refused's line.
func holdSession(inner *ssh.ServerConn, chans <-chan ssh.NewChannel, refused *UserError) (*heldSession, bool) {
	timer := time.AfterFunc(heldStartWait, func() { inner.Close() })
	defer timer.Stop()
	nc, ok := <-chans
	if !ok {
		return nil, false
	}
	if nc.ChannelType() != "session" {
		rejectChannel(nc, ssh.Prohibited, refused)
		return nil, false
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return nil, false
	}
	h := &heldSession{NewChannel: nc, ch: ch}
	startedCh := make(chan struct{})
	h.reqs = newGate(reqs, func(r *ssh.Request) bool { return h.request(r, startedCh) })
	select {
	case <-startedCh:
	case <-h.reqs.out: // closed: the channel or the connection ended first
	}
	h.mu.Lock()
	interactive := h.pty != nil && h.start != nil
	h.mu.Unlock()
	if !interactive {
		endChannel(ch, refused.Line)
		return nil, false
	}
	h.keys = newKeyReader(ch)
	return h, true
}

// request answers one client request before the session goes on.
func (h *heldSession) request(r *ssh.Request, startedCh chan struct{}) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok := false
	switch r.Type {
	case "pty-req":
		if !h.started {
			h.pty, ok = append([]byte(nil), r.Payload...), true
		}
	case "env", "auth-agent-req@openssh.com":
		// Kept in order for the node; the relay applies the policy to
		// agent forwarding when it replays the request.
		if !h.started {
			h.kept, ok = append(h.kept, &ssh.Request{Type: r.Type, Payload: append([]byte(nil), r.Payload...)}), true
		}
	case "window-change":
		h.resize(r.Payload)
		return true // wants no reply
	case "shell", "exec", "subsystem":
		if !h.started {
			h.started, ok = true, true
			if r.Type != "subsystem" {
				h.start = &ssh.Request{Type: r.Type, Payload: append([]byte(nil), r.Payload...)}
			}
			close(startedCh)
		}
	}
	if r.WantReply {
		_ = r.Reply(ok, nil)
	}
	return true
}

// resize applies a window-change to the kept pty-req, so the node's
// terminal starts at the size the client has now.
func (h *heldSession) resize(payload []byte) {
	var wc struct{ Cols, Rows, W, H uint32 }
	var pty struct {
		Term             string
		Cols, Rows, W, H uint32
		Modes            string
	}
	if h.pty == nil || ssh.Unmarshal(payload, &wc) != nil || ssh.Unmarshal(h.pty, &pty) != nil {
		return
	}
	pty.Cols, pty.Rows, pty.W, pty.H = wc.Cols, wc.Rows, wc.W, wc.H
	h.pty = ssh.Marshal(pty)
}

// Accept hands the relay the session as the client opened it: its input
// from where the dialogue stopped reading, and its requests replayed (the
// client has had its answers; want-reply is off, so the node's go nowhere)
// before whatever the client sends from now on.
func (h *heldSession) Accept() (ssh.Channel, <-chan *ssh.Request, error) {
	h.mu.Lock()
	replay := append([]*ssh.Request{{Type: "pty-req", Payload: h.pty}}, h.kept...)
	replay = append(replay, h.start)
	h.mu.Unlock()
	reqs := make(chan *ssh.Request)
	go func() {
		defer close(reqs)
		for _, r := range replay {
			reqs <- r
		}
		for r := range h.reqs.out {
			reqs <- r
		}
	}()
	return resumedChannel{Channel: h.ch, in: h.keys}, reqs, nil
}

// Reject ends the session the client already has open, in words.
func (h *heldSession) Reject(_ ssh.RejectionReason, message string) error {
	endChannel(h.ch, message)
	return nil
}

// resumedChannel is the held channel with its input read through the
// dialogue's keyReader.
type resumedChannel struct {
	ssh.Channel
	in io.Reader
}

func (c resumedChannel) Read(p []byte) (int, error) { return c.in.Read(p) }
