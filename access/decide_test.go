package access

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

var (
	staging = policy.Node{Name: "web-1", Labels: map[string]string{"env": "staging"}}
	data    = policy.Node{Name: "db-1", Labels: map[string]string{"team": "data"}}
	webNode = policy.Node{Name: "www-1", Labels: map[string]string{"team": "web"}}
)

// TestAuthorize is the whole answer to "may this identity use this login
// on this node now", case by case.
func TestAuthorize(t *testing.T) {
	ctx := context.Background()
	dataEng := map[string][]string{"groups": {"data-eng"}}
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *env) // returns nothing; may lock, grant, move the clock
		id     Identity
		login  string
		node   policy.Node
		allow  bool
		rule   string   // exact, when set
		roles  []string // allowing roles
		grants bool     // RequestIDs name the grant set up
		notice string   // exact
		hint   string   // exact
	}{
		{name: "role from users:", id: Identity{User: "bob"}, login: "ubuntu", node: staging,
			allow: true, rule: "role dev allows login ubuntu on {env: staging}", roles: []string{"dev"}},
		{name: "refused with the roles to request", id: Identity{User: "bob"}, login: "postgres", node: data,
			rule: "no role allows login postgres on {team: data}",
			hint: "request one with: ssh bastion request dba,web --reason ..., or this login only with: ssh bastion request --node db-1 --login postgres --reason ..."},
		{name: "refused where no requestable role allows the login: roles only", id: Identity{User: "bob"}, login: "root", node: data,
			rule: "no role allows login root on {team: data}",
			hint: "request one with: ssh bastion request dba,web --reason ..."},
		{name: "role from a claim", id: Identity{User: "zoe", Claims: dataEng}, login: "postgres", node: data,
			allow: true, roles: []string{"dba"}},
		{name: "the same user without the claim", id: Identity{User: "zoe"}, login: "postgres", node: data},
		{name: "access resting on a grant names it", setup: grantWeb, id: Identity{User: "bob"}, login: "www", node: webNode,
			allow: true, roles: []string{"web"}, grants: true},
		{name: "a grant of a role also held otherwise is not depended on", setup: grantDBA,
			id: Identity{User: "bob", Claims: dataEng}, login: "postgres", node: data, allow: true, roles: []string{"dba"}},
		{name: "locked", setup: lockBob(0), id: Identity{User: "bob"}, login: "ubuntu", node: staging,
			rule: RuleLock, notice: "bob is locked; contact your security team"},
		{name: "locked until", setup: lockBob(time.Hour), id: Identity{User: "bob"}, login: "ubuntu", node: staging,
			rule: RuleLock, notice: "bob is locked until " + t0.Add(time.Hour).Local().Format("2006-01-02 15:04 MST") + "; contact your security team"},
		{name: "lock expired", setup: func(t *testing.T, e *env) {
			lockBob(time.Hour)(t, e)
			e.clock.Advance(time.Hour)
		}, id: Identity{User: "bob"}, login: "ubuntu", node: staging, allow: true, roles: []string{"dev"}},
		{name: "a lock beats a grant", setup: func(t *testing.T, e *env) {
			grantWeb(t, e)
			lockBob(0)(t, e)
		}, id: Identity{User: "bob"}, login: "www", node: webNode, rule: RuleLock, notice: "bob is locked; contact your security team"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var grantID string
			if tc.setup != nil {
				tc.setup(t, e)
				if gs, _ := e.store.ActiveGrants(ctx, "bob", e.clock.Now()); len(gs) > 0 {
					grantID = gs[0].ID
				}
			}
			v, err := e.svc.Authorize(ctx, tc.id, tc.login, tc.node)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if v.Allowed != tc.allow {
				t.Fatalf("Allowed = %v, want %v (%+v)", v.Allowed, tc.allow, v)
			}
			if tc.rule != "" && v.Rule != tc.rule {
				t.Errorf("Rule = %q, want %q", v.Rule, tc.rule)
			}
			if tc.roles != nil && !slices.Equal(v.Roles, tc.roles) {
				t.Errorf("Roles = %v, want %v", v.Roles, tc.roles)
			}
			if want := []string{grantID}; tc.grants && !slices.Equal(v.RequestIDs, want) || !tc.grants && len(v.RequestIDs) > 0 {
				t.Errorf("RequestIDs = %v, want the grant only when the access rests on it (%v)", v.RequestIDs, tc.grants)
			}
			if v.Notice != tc.notice {
				t.Errorf("Notice = %q, want %q", v.Notice, tc.notice)
			}
			if tc.hint != "" && v.Hint != tc.hint {
				t.Errorf("Hint = %q, want %q", v.Hint, tc.hint)
			}
			if v.Allowed && v.Hint != "" {
				t.Errorf("an allowed verdict carries a hint: %q", v.Hint)
			}
			if v.Rule == RuleLock && (v.Reason != "bob is locked" || v.Hint != "" || strings.Contains(v.Notice+v.Reason, "investigation")) {
				t.Errorf("lock verdict %+v: want reason `bob is locked`, no hint, no lock reason", v)
			}
			// The bastion's own commands are refused exactly when, and with
			// the line that, a lock refuses the login.
			if a, err := e.svc.Admit(ctx, tc.id); err != nil || a.Allowed == (v.Rule == RuleLock) || (!a.Allowed && (a.Notice != v.Notice || a.Rule != RuleLock)) {
				t.Errorf("Admit = %+v, %v; Authorize's rule %q notice %q", a, err, v.Rule, v.Notice)
			}
			if v.Standing.User() != tc.id.User {
				t.Errorf("Standing is of %q, want %q", v.Standing.User(), tc.id.User)
			}
			// Node lists offer exactly what Authorize allows.
			if got := slices.Contains(v.Standing.Logins(tc.node), tc.login); got != v.Allowed {
				t.Errorf("Logins(%s) contains %s = %v, Authorize allowed = %v", tc.node.Name, tc.login, got, v.Allowed)
			}
		})
	}
}

func grantWeb(t *testing.T, e *env) {
	t.Helper()
	r := e.create(t, "bob", "web")
	e.review(t, "dave", r.ID, true)
}

func grantDBA(t *testing.T, e *env) {
	t.Helper()
	r := e.create(t, "bob", "dba")
	e.review(t, "alice", r.ID, true)
	e.review(t, "revy", r.ID, true)
}

func lockBob(ttl time.Duration) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		if _, err := e.svc.Lock(context.Background(), Admin(), "bob", "investigation", ttl); err != nil {
			t.Fatal(err)
		}
	}
}

// brokenStore fails the reads a decision needs.
type brokenStore struct {
	Store
	lock, grants error
}

func (b brokenStore) ActiveLock(ctx context.Context, user string, now time.Time) (storage.Lock, error) {
	if b.lock != nil {
		return storage.Lock{}, b.lock
	}
	return b.Store.ActiveLock(ctx, user, now)
}

func (b brokenStore) ActiveGrants(ctx context.Context, user string, now time.Time) ([]storage.Request, error) {
	if b.grants != nil {
		return nil, b.grants
	}
	return b.Store.ActiveGrants(ctx, user, now)
}

// A decision that cannot read the store is no decision: an error, never a
// verdict, so new access fails closed.
func TestAuthorizeFailsClosed(t *testing.T) {
	down := errors.New("database is down")
	for name, st := range map[string]brokenStore{
		"lock unreadable":   {lock: down},
		"grants unreadable": {grants: down},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			st.Store = e.store
			svc := e.newService(st)
			v, err := svc.Authorize(context.Background(), Identity{User: "bob"}, "ubuntu", staging)
			if !errors.Is(err, down) || v.Allowed {
				t.Errorf("Authorize = %+v, %v; want the store's error and no access", v, err)
			}
		})
	}
	if v := Admin().Decide("ubuntu", staging); v.Allowed {
		t.Errorf("a standing without a policy was allowed: %+v", v)
	}
}

// Assume answers a hypothetical question: exactly the roles given, the
// lock still in force.
func TestAssume(t *testing.T) {
	e := newEnv(t)
	bob := e.who(t, "bob")
	if v := bob.Assume([]string{"dba"}).Decide("postgres", data); !v.Allowed {
		t.Errorf("bob assuming dba: %+v", v)
	}
	if v := bob.Assume([]string{"dba"}).Decide("ubuntu", staging); v.Allowed {
		t.Errorf("bob assuming only dba kept dev: %+v", v)
	}
	lockBob(0)(t, e)
	if v := e.who(t, "bob").Assume([]string{"dba"}).Decide("postgres", data); v.Allowed || v.Rule != RuleLock {
		t.Errorf("locked bob assuming dba: %+v", v)
	}
}
