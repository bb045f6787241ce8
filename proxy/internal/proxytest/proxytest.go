// Package proxytest holds fakes for the proxy's edges, for the proxy's own
// unit tests: an Authorizer answering from a table that a test changes
// while sessions run (to revoke, lock or break the store), an Auditor
// keeping every event in memory, and a Log keeping what the proxy logs.
// The in-process node they run against is package internal/sshtest.
package proxytest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Any matches every user, login or node in an Authorizer rule.
const Any = "*"

type rule struct {
	user, login, node string
	v                 proxy.Verdict
	err               error
}

func (r rule) matches(user, login, node string) bool {
	m := func(pat, s string) bool { return pat == Any || pat == s }
	return m(r.user, user) && m(r.login, login) && m(r.node, node)
}

// Authorizer is a fake proxy.Authorizer. The latest rule that matches a
// question answers it; with none, the login is refused with
// "no role allows login LOGIN". Safe for concurrent use.
type Authorizer struct {
	mu     sync.Mutex
	rules  []rule
	locked map[string]string // user -> lock text
	asked  int
}

// NewAuthorizer returns an Authorizer with no rules: everything refused.
func NewAuthorizer() *Authorizer { return &Authorizer{locked: map[string]string{}} }

// Allow lets user log in as login on node with v's options.
func (a *Authorizer) Allow(user, login, node string, v proxy.Verdict) {
	v.Allowed = true
	a.Set(user, login, node, v)
}

// Set makes v the answer for user, login and node (Any matches all).
func (a *Authorizer) Set(user, login, node string, v proxy.Verdict) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rules = append(a.rules, rule{user: user, login: login, node: node, v: v})
}

// Fail makes the question fail with err, as a store that cannot be read.
func (a *Authorizer) Fail(user, login, node string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rules = append(a.rules, rule{user: user, login: login, node: node, err: err})
}

// Lock locks user: new connections are refused with text, live ones
// re-checked to a refusal with rule "lock". Unlock undoes it.
func (a *Authorizer) Lock(user, text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.locked[user] = text
}

// Unlock undoes Lock.
func (a *Authorizer) Unlock(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.locked, user)
}

// Asked is how many times Authorize was called.
func (a *Authorizer) Asked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked
}

// Admit refuses a locked user. It is the one place the fake answers the
// per-connection admission question.
func (a *Authorizer) Admit(_ context.Context, id proxy.Identity) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if text, ok := a.locked[id.User]; ok {
		return fmt.Errorf("%s", text)
	}
	return nil
}

// Authorize answers from the table.
func (a *Authorizer) Authorize(_ context.Context, id proxy.Identity, login string, node config.Node) (proxy.Verdict, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked++
	return a.decide(id.User, login, node.Name)
}

func (a *Authorizer) decide(user, login, node string) (proxy.Verdict, error) {
	if text, ok := a.locked[user]; ok {
		return proxy.Verdict{Reason: text, Rule: proxy.RuleLock, Notice: text}, nil
	}
	for _, r := range slices.Backward(a.rules) {
		if r.matches(user, login, node) {
			return r.v, r.err
		}
	}
	return proxy.Verdict{Reason: "no role allows login " + login}, nil
}

// Nodes lists, of nodes, those where the table allows user a login it
// names (rules for Any login are listed as "*").
func (a *Authorizer) Nodes(_ context.Context, id proxy.Identity, nodes []config.Node) ([]proxy.NodeAccess, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []proxy.NodeAccess
	for _, n := range nodes {
		var logins []string
		for _, r := range a.rules {
			if r.matches(id.User, r.login, n.Name) && !slices.Contains(logins, r.login) {
				if v, err := a.decide(id.User, r.login, n.Name); err == nil && v.Allowed {
					logins = append(logins, r.login)
				}
			}
		}
		if len(logins) > 0 {
			out = append(out, proxy.NodeAccess{Node: n, Logins: logins})
		}
	}
	return out, nil
}

// Describe is a fixed who-am-I text.
func (a *Authorizer) Describe(_ context.Context, id proxy.Identity) (string, error) {
	return "user: " + id.User + "\nroles: (fake)\n", nil
}

// Auditor is a fake audit log keeping events in memory. Before, when set,
// sees each event first: an error it returns is Append's, and the event is
// not kept (a full disk); it may also block (a slow one).
type Auditor struct {
	Before func(ctx context.Context, ev storage.Event) error

	mu  sync.Mutex
	evs []storage.Event
}

// Append keeps ev unless Before refuses it.
func (a *Auditor) Append(ctx context.Context, ev storage.Event) error {
	if a.Before != nil {
		if err := a.Before(ctx, ev); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
	return nil
}

// Events returns the kept events of type typ, or all with typ "".
func (a *Auditor) Events(typ string) []storage.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []storage.Event
	for _, ev := range a.evs {
		if typ == "" || ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// Count is len(Events(typ)).
func (a *Auditor) Count(typ string) int { return len(a.Events(typ)) }

// Wait waits up to ten seconds for n events of type typ and returns them;
// events are appended after the client has seen the session end.
func (a *Auditor) Wait(t testing.TB, typ string, n int) []storage.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := a.Events(typ)
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit: %d %s events after 10 s, want %d; log: %+v", len(evs), typ, n, a.Events(""))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Log keeps what the proxy logs, for a test to read: give Logger to
// proxy.Options.Logger. Groups are flattened. Safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	recs []LogRecord
}

// LogRecord is one logged message with its attributes as text.
type LogRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// Logger logs to l.
func (l *Log) Logger() *slog.Logger { return slog.New(logHandler{log: l}) }

// Find returns the records logged with message msg, oldest first.
func (l *Log) Find(msg string) []LogRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LogRecord
	for _, r := range l.recs {
		if r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

type logHandler struct {
	log   *Log
	attrs []slog.Attr
}

func (logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := LogRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	h.log.recs = append(h.log.recs, rec)
	return nil
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{log: h.log, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h logHandler) WithGroup(string) slog.Handler { return h }
