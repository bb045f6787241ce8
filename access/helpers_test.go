package access

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/notify"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// testRoles: bob and carol are engineers who may request dba or web; alice
// and anyone in group security review dba with two approvals; dave reviews
// web alone; ivy both requests and reviews dba; sam manages locks.
const testRoles = `
claims_to_roles:
  - {claim: groups, value: security, roles: [security]}
  - {claim: groups, value: "data-*", roles: [dba]}
users:
  - {name: bob, roles: [dev]}
  - {name: carol, roles: [dev]}
  - {name: alice, roles: [security]}
  - {name: dave, roles: [webrev]}
  - {name: ivy, roles: [dev, security]}
  - {name: sam, roles: [lockman]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request:
        roles: [dba, web]
        max_duration: 4h
        reason_required: true
  - name: dba
    allow:
      logins: [postgres]
      node_labels: {team: data}
  - name: web
    allow:
      logins: [www]
      node_labels: {team: web}
  - name: security
    allow:
      review_requests: {roles: [dba], approvals: 2}
  - name: webrev
    allow:
      review_requests: {roles: [web], approvals: 1, denials: 1}
  - name: lockman
    allow:
      locks: [manage]
`

var t0 = time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)

// fakeClock is the injectable clock; tests step it instead of sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// staticPolicy serves one parsed policy, like an Engine that never reloads.
type staticPolicy struct{ p *policy.Policy }

func (s staticPolicy) Current() *policy.Policy { return s.p }

// memAudit records appended events; the audit package (hash chain) is
// tested on its own, here we only check what access asked to record.
type memAudit struct {
	mu  sync.Mutex
	evs []storage.Event
}

func (a *memAudit) Append(_ context.Context, ev storage.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
	return nil
}

func (a *memAudit) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.evs)
}

func (a *memAudit) count(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

type memNotes struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (n *memNotes) Notify(_ context.Context, m notify.Message) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, m)
}

func (n *memNotes) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.msgs {
		out = append(out, m.Event)
	}
	return out
}

type env struct {
	svc   *Service
	store *sqlite.Store
	aud   *memAudit
	notes *memNotes
	clock *fakeClock
	pol   staticPolicy
	path  string
}

func openStore(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvRoles(t, testRoles)
}

// newEnvRoles is newEnv under another roles file.
func newEnvRoles(t testing.TB, roles string) *env {
	t.Helper()
	p, err := policy.Parse("roles.yaml", []byte(roles))
	if err != nil {
		t.Fatalf("parse roles: %v", err)
	}
	e := &env{
		aud:   &memAudit{},
		notes: &memNotes{},
		clock: &fakeClock{now: t0},
		pol:   staticPolicy{p},
		path:  filepath.Join(t.TempDir(), "gatehouse.db"),
	}
	e.store = openStore(t, e.path)
	e.svc = e.newService(e.store)
	return e
}

// newService is another bastion on the same database, clock and audit log.
func (e *env) newService(st Store) *Service {
	return New(st, e.pol, e.aud, e.notes, Options{
		Clock:     e.clock.Now,
		PublicURL: "https://gh.example/",
		Interval:  5 * time.Millisecond,
		Logger:    slog.New(slog.DiscardHandler),
	})
}

// who returns user's current standing; "admin" is the CLI identity.
func (e *env) who(t testing.TB, user string) Effective {
	t.Helper()
	if user == "admin" {
		return Admin()
	}
	var claims map[string][]string
	if len(user) > 3 && user[:3] == "rev" {
		claims = map[string][]string{"groups": {"security"}}
	}
	eff, err := e.svc.Effective(context.Background(), user, claims)
	if err != nil {
		t.Fatalf("effective roles of %s: %v", user, err)
	}
	return eff
}

func (e *env) create(t testing.TB, user string, roles ...string) storage.Request {
	t.Helper()
	r, err := e.svc.Create(context.Background(), e.who(t, user), roles, "incident 42", 2*time.Hour)
	if err != nil {
		t.Fatalf("%s requests %v: %v", user, roles, err)
	}
	return r
}

func (e *env) review(t testing.TB, user, id string, approve bool) storage.Request {
	t.Helper()
	r, err := e.svc.Review(context.Background(), e.who(t, user), id, approve, "ok")
	if err != nil {
		t.Fatalf("%s reviews %s: %v", user, id, err)
	}
	return r
}

// drain returns the changes already delivered to ch.
func drain(ch <-chan Change) []Change {
	var out []Change
	for {
		select {
		case c := <-ch:
			out = append(out, c)
		default:
			return out
		}
	}
}
