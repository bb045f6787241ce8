package proxy

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// LiveSession describes a session running on this bastion.
type LiveSession struct {
	ID      string    `json:"id"`
	ConnID  string    `json:"conn_id"`
	User    string    `json:"user"`
	Login   string    `json:"login"`
	Node    string    `json:"node"`
	Kind    string    `json:"kind"`
	Command string    `json:"command,omitempty"`
	Start   time.Time `json:"start"`
}

// Live lists the sessions running on this bastion.
func (s *Server) Live() []LiveSession {
	var out []LiveSession
	for _, c := range s.live.snapshot() {
		c.mu.Lock()
		if c.closed {
			// Terminated (or revoked) and closing: no longer live to anyone
			// looking, even though the close takes a moment to finish.
			c.mu.Unlock()
			continue
		}
		for _, lc := range c.channels {
			out = append(out, LiveSession{ID: lc.id, ConnID: c.id, User: c.ident.User, Login: c.login, Node: c.node.Name, Kind: lc.kind, Command: lc.command, Start: c.start})
		}
		c.mu.Unlock()
	}
	return out
}

// Recheck re-authorizes live connections (only user's, when user is not
// empty) and closes every one the current state no longer allows. notice,
// when not empty, is the line shown to the user; otherwise the refusal
// reason is. It returns the number of connections closed.
func (s *Server) Recheck(ctx context.Context, user, notice string) int {
	closed := 0
	// One decision per identity, login and node per pass: a thousand
	// sessions of one user on one node cost one store round, not a
	// thousand (this pass runs every second as the safety net).
	type result struct {
		v   Verdict
		err error
	}
	memo := map[string]result{}
	var ended []storage.Event
	for _, c := range s.live.snapshot() {
		if user != "" && c.ident.User != user {
			continue
		}
		key := c.ident.User + "\x00" + c.ident.LoginID + "\x00" + c.login + "\x00" + c.node.Name
		res, ok := memo[key]
		if !ok {
			res.v, res.err = s.recheckOne(ctx, c)
			memo[key] = res
		}
		v, err := res.v, res.err
		if err != nil {
			// A transient store failure must not cut live sessions; new
			// sessions fail closed, the safety-net recheck tries again.
			s.log.Warn("recheck failed; keeping session", "conn", c.id, "user", c.ident.User, "err", err)
			continue
		}
		if v.Allowed {
			c.setVerdict(v)
			continue
		}
		why := &UserError{Line: notice}
		if notice == "" {
			why = userErrorf("access as %s on %s is no longer allowed (%s); session closed", c.login, c.node.Name, v.Reason)
			if v.Rule == RuleLock {
				// Same words as the lock's change event, whichever comes first.
				why = userErrorf("your access was locked at %s; session closed", time.Now().Format("15:04"))
			} else if old := c.currentVerdict(); len(old.RequestIDs) > 0 {
				// The safety net noticed before the grant's change event
				// did: say what ended, as the event would have.
				why = userErrorf("access via request %s ended at %s; session closed", strings.Join(old.RequestIDs, ","), time.Now().Format("15:04"))
			}
		}
		if c.terminate(why) {
			closed++
			ended = append(ended, storage.Event{Type: audit.TypeSessionTerminated, Actor: "gatehouse", Target: c.node.Name,
				Fields: map[string]any{"user": c.ident.User, "login": c.login, "conn": c.id, "reason": v.Reason, "rule": v.Rule, "notice": why.Line}})
		}
	}
	// Cut every session first, then record them all at once: appended
	// together, the audit log's group commit writes them in a few
	// commits instead of one durable commit per session.
	var wg sync.WaitGroup
	for _, ev := range ended {
		wg.Add(1)
		go func() { defer wg.Done(); s.audit(ctx, ev) }()
	}
	wg.Wait()
	return closed
}

// recheckOne asks Authorize, the same question a new jump asks: a locked
// user is a refusing verdict, a store outage an error (which keeps the
// session).
func (s *Server) recheckOne(ctx context.Context, c *liveConn) (Verdict, error) {
	return s.opt.Authorizer.Authorize(ctx, c.ident, c.login, c.node)
}

// Terminate closes the live session id (and its connection) with a notice
// naming who ended it. It reports whether the session was found here.
func (s *Server) Terminate(ctx context.Context, id, by string) bool {
	c, _, ok := s.live.channel(id)
	if !ok {
		return false
	}
	if c.terminate(userErrorf("session terminated by %s", by)) {
		s.audit(ctx, storage.Event{Type: audit.TypeSessionTerminated, Actor: by, Target: c.node.Name,
			Fields: map[string]any{"session": id, "user": c.ident.User, "login": c.login, "conn": c.id}})
	}
	return true
}

// Join streams the live output of session id to a read-only watcher. The
// channel closes when the session ends; call stop when done watching.
func (s *Server) Join(ctx context.Context, id, by string) (<-chan []byte, func(), bool) {
	c, lc, ok := s.live.channel(id)
	if !ok {
		return nil, nil, false
	}
	s.audit(ctx, storage.Event{Type: audit.TypeSessionJoin, Actor: by, Target: c.node.Name, Fields: map[string]any{"session": id, "user": c.ident.User}})
	ch, stop := lc.watch.subscribe()
	return ch, stop, true
}

// RunRechecks re-evaluates every live session every interval until ctx
// ends: the safety net behind change notifications.
func (s *Server) RunRechecks(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Recheck(ctx, "", "")
		}
	}
}
