package access

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/notify"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// rulesRoles: bob may request dba and web, and dba only for one session
// when asked by fsr (for_session_required); security reviews dba and web
// with an AND-rule: one dba-lead and one manager. lee is a dba-lead, mia a
// manager, bo both, sec neither.
const rulesRoles = `
users:
  - {name: bob, roles: [dev]}
  - {name: fsr, roles: [strict]}
  - {name: lee, roles: [security, dba-lead]}
  - {name: mia, roles: [security, manager]}
  - {name: bo, roles: [security, dba-lead, manager]}
  - {name: sec, roles: [security]}
roles:
  - name: dev
    allow:
      request: {roles: [dba, web], max_duration: 4h}
  - name: strict
    allow:
      request: {roles: [dba], for_session_required: true}
  - name: dba
    allow:
      logins: [postgres, root]
      node_labels: {team: data}
  - name: web
    allow:
      logins: [www]
      node_labels: {team: web}
  - name: security
    allow:
      review_requests:
        roles: [dba, web]
        approvals: [{roles: [dba-lead], count: 1}, {roles: [manager], count: 1}]
  - {name: dba-lead}
  - {name: manager}
`

var db1 = policy.Node{Name: "db-1", Labels: map[string]string{"team": "data"}}

func TestApprovalRules(t *testing.T) {
	type rv struct {
		who     string
		approve bool
		roles   []string
		wantErr string
	}
	tests := []struct {
		name       string
		roles      []string
		reviews    []rv
		wantState  string
		wantRoles  string // granted roles when approved
		wantStatus string
	}{
		{"AND-rule partly met", []string{"dba"}, []rv{{who: "lee", approve: true}}, storage.StatePending, "",
			"needs 1 more approval from manager"},
		{"AND-rule met", []string{"dba"}, []rv{{who: "lee", approve: true}, {who: "mia", approve: true}}, storage.StateApproved, "dba",
			"rule met: 1 from dba-lead (lee), 1 from manager (mia)"},
		{"reviewer in both groups counts once", []string{"dba"}, []rv{{who: "bo", approve: true}}, storage.StatePending, "",
			"needs 1 more approval from manager"},
		{"reviewer in both groups moves to the group left open", []string{"dba"}, []rv{{who: "bo", approve: true}, {who: "lee", approve: true}},
			storage.StateApproved, "dba", "rule met: 1 from dba-lead (lee), 1 from manager (bo)"},
		{"approval that cannot count", []string{"dba"}, []rv{{who: "sec", approve: true, wantErr: "your approval would not count: request %s needs 1 approval from dba-lead and 1 approval from manager"}},
			storage.StatePending, "", "needs 1 more approval from dba-lead and 1 more approval from manager"},
		{"one denial denies", []string{"dba"}, []rv{{who: "sec", approve: false}}, storage.StateDenied, "", ""},
		{"subset approval grants only those", []string{"dba", "web"}, []rv{{who: "lee", approve: true, roles: []string{"dba"}}, {who: "mia", approve: true}},
			storage.StateApproved, "dba", "dba: rule met: 1 from dba-lead (lee), 1 from manager (mia); web: needs 1 more approval from dba-lead"},
		{"subset approvals that disagree stay pending", []string{"dba", "web"}, []rv{{who: "lee", approve: true, roles: []string{"dba"}}, {who: "mia", approve: true, roles: []string{"web"}}},
			storage.StatePending, "", "dba: needs 1 more approval from manager; web: needs 1 more approval from dba-lead"},
		{"subset naming all is a full approval", []string{"dba", "web"}, []rv{{who: "lee", approve: true, roles: []string{"web", "dba"}}, {who: "mia", approve: true}},
			storage.StateApproved, "dba,web", "rule met: 1 from dba-lead (lee), 1 from manager (mia)"},
		{"subset outside the request", []string{"dba"}, []rv{{who: "lee", approve: true, roles: []string{"web"}, wantErr: "request %s does not ask for role web"}},
			storage.StatePending, "", ""},
		{"a denial names no roles", []string{"dba"}, []rv{{who: "lee", approve: false, roles: []string{"dba"}, wantErr: "a denial covers the whole request"}},
			storage.StatePending, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnvRoles(t, rulesRoles)
			r := e.create(t, "bob", tt.roles...)
			for _, v := range tt.reviews {
				_, err := e.svc.ReviewWith(ctx, e.who(t, v.who), r.ID, ReviewVerdict{Approve: v.approve, Reason: "ok", Roles: v.roles})
				want := strings.ReplaceAll(v.wantErr, "%s", r.ID)
				if want == "" && err != nil || want != "" && (err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want)) {
					t.Fatalf("%s reviews: err = %v, want %q", v.who, err, want)
				}
			}
			got, err := e.store.GetRequest(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.wantState {
				t.Fatalf("state %s, want %s", got.State, tt.wantState)
			}
			if tt.wantState == storage.StateApproved {
				if strings.Join(got.Roles, ",") != tt.wantRoles {
					t.Fatalf("granted %v, want %s", got.Roles, tt.wantRoles)
				}
				if len(got.Roles) < len(tt.roles) && !slices.Equal(got.Requested, tt.roles) {
					t.Fatalf("requested %v, want %v kept", got.Requested, tt.roles)
				}
				if eff := e.who(t, "bob"); strings.Join(eff.Subject.Roles, ",") != "dev,"+tt.wantRoles {
					t.Fatalf("bob's roles %v", eff.Subject.Roles)
				}
			}
			if tt.wantStatus != "" {
				if st := e.svc.Explain(got); st.Status != tt.wantStatus {
					t.Fatalf("status %q, want %q", st.Status, tt.wantStatus)
				}
			}
		})
	}
}

func TestResourceRequest(t *testing.T) {
	ctx := context.Background()
	e := newEnvRoles(t, rulesRoles)
	bob := e.who(t, "bob")
	if _, err := e.svc.Ask(ctx, bob, Ask{Node: &db1, Login: "www", Reason: "x"}); err == nil || !strings.Contains(err.Error(), "no role you may request allows login www on db-1") {
		t.Fatalf("www on db-1: %v", err)
	}
	if _, err := e.svc.Ask(ctx, bob, Ask{Node: &db1, Reason: "x"}); err == nil || !strings.Contains(err.Error(), "needs --login") {
		t.Fatalf("no login: %v", err)
	}
	r, err := e.svc.Ask(ctx, bob, Ask{Node: &db1, Login: "postgres", Reason: "INC-7", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r.Node != "db-1" || r.Login != "postgres" || strings.Join(r.Roles, ",") != "dba" {
		t.Fatalf("request %+v", r)
	}
	e.review(t, "lee", r.ID, true)
	e.review(t, "mia", r.ID, true)
	eff := e.who(t, "bob")
	if slices.Contains(eff.Subject.Roles, "dba") || len(eff.Subject.Resources) != 1 {
		t.Fatalf("a resource grant became a role: %+v", eff.Subject)
	}
	if ids := eff.GrantsFor("dba"); len(ids) != 0 {
		t.Fatalf("GrantsFor(dba) = %v", ids)
	}
	p := e.pol.p
	db2 := policy.Node{Name: "db-2", Labels: db1.Labels}
	if d := p.Decide(eff.Subject, "postgres", db1); !d.Allowed || !slices.Equal(d.Grants, []string{r.ID}) {
		t.Fatalf("postgres on db-1: %+v", d)
	}
	if d := p.Decide(eff.Subject, "root", db1); d.Allowed {
		t.Fatal("root on db-1 allowed by a grant for postgres")
	}
	if d := p.Decide(eff.Subject, "postgres", db2); d.Allowed {
		t.Fatal("postgres on db-2 allowed by a grant for db-1")
	}
	// The one decision names the resource grant as what the access rests
	// on, so the session ends with it.
	v, err := e.svc.Authorize(ctx, Identity{User: "bob"}, "postgres", db1)
	if err != nil || !v.Allowed || !slices.Equal(v.RequestIDs, []string{r.ID}) {
		t.Fatalf("Authorize postgres on db-1: %+v %v", v, err)
	}
	if v, err := e.svc.Authorize(ctx, Identity{User: "bob"}, "root", db1); err != nil || v.Allowed {
		t.Fatalf("Authorize root on db-1: %+v %v", v, err)
	}
	e.clock.Advance(time.Hour)
	if eff := e.who(t, "bob"); len(eff.Subject.Resources) != 0 {
		t.Fatal("resource grant outlived its duration")
	}
}

// TestSelectorRequest: a request for a login on the nodes a label selector
// matches is filed through a role that allows it on every one of them, is
// reviewed like any other, and once approved allows the login on a
// matching node and not on another.
func TestSelectorRequest(t *testing.T) {
	ctx := context.Background()
	e := newEnvRoles(t, rulesRoles)
	bob := e.who(t, "bob")
	db2 := policy.Node{Name: "db-2", Labels: map[string]string{"team": "data", "env": "prod"}}
	web1 := policy.Node{Name: "web-1", Labels: map[string]string{"team": "web", "env": "prod"}}
	inventory := []policy.Node{db1, db2, web1}
	for _, c := range []struct {
		name string
		ask  Ask
		want string
	}{
		{"no node matches", Ask{Labels: map[string]string{"team": "nowhere"}, Login: "postgres"},
			"no role you may request allows login postgres on every node labelled team=nowhere, or no node is labelled so"},
		{"a matching node no role opens", Ask{Labels: map[string]string{"env": "prod"}, Login: "postgres"},
			"no role you may request allows login postgres on every node labelled env=prod, or no node is labelled so"},
		{"node and labels", Ask{Node: &db1, Labels: map[string]string{"team": "data"}, Login: "postgres"}, "--node or --labels, not both"},
		{"no login", Ask{Labels: map[string]string{"team": "data"}}, "needs --login"},
		{"a glob", Ask{Labels: map[string]string{"team": "d*"}, Login: "postgres"}, "may hold only letters"},
	} {
		c.ask.Nodes, c.ask.Reason = inventory, "x"
		if _, err := e.svc.Ask(ctx, bob, c.ask); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}

	sel := map[string]string{"team": "data"}
	r, err := e.svc.Ask(ctx, bob, Ask{Labels: sel, Nodes: inventory, Login: "postgres", Reason: "INC-8", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sel["team"] = "web" // the request keeps its own copy
	if r.Node != "" || r.Labels["team"] != "data" || len(r.Labels) != 1 || r.Login != "postgres" || strings.Join(r.Roles, ",") != "dba" || !r.IsResource() {
		t.Fatalf("request %+v", r)
	}
	if got, _ := e.store.GetRequest(ctx, r.ID); got.Where() != "nodes labelled team=data" {
		t.Fatalf("stored request is for %q", got.Where())
	}
	if ev, _ := e.aud.last(audit.TypeRequestCreate); ev.Fields["labels"] == nil || ev.Fields["login"] != "postgres" || ev.Fields["node"] != nil {
		t.Fatalf("audit fields %v", ev.Fields)
	}
	if v, _ := e.svc.Authorize(ctx, Identity{User: "bob"}, "postgres", db1); v.Allowed {
		t.Fatal("a pending selector request allowed a login")
	}
	e.review(t, "lee", r.ID, true)
	e.review(t, "mia", r.ID, true)
	if eff := e.who(t, "bob"); slices.Contains(eff.Subject.Roles, "dba") || len(eff.Subject.Resources) != 1 {
		t.Fatalf("a selector grant became a role: %+v", eff.Subject)
	}
	for _, c := range []struct {
		login string
		n     policy.Node
		allow bool
	}{
		{"postgres", db1, true},
		{"postgres", db2, true},
		{"postgres", web1, false},
		{"root", db1, false},
	} {
		v, err := e.svc.Authorize(ctx, Identity{User: "bob"}, c.login, c.n)
		if err != nil || v.Allowed != c.allow {
			t.Errorf("Authorize %s on %s: %+v %v; want allowed %v", c.login, c.n.Name, v, err, c.allow)
		}
		if c.allow && !slices.Equal(v.RequestIDs, []string{r.ID}) {
			t.Errorf("%s on %s rests on %v, want the grant %s", c.login, c.n.Name, v.RequestIDs, r.ID)
		}
	}
	e.clock.Advance(time.Hour)
	if v, _ := e.svc.Authorize(ctx, Identity{User: "bob"}, "postgres", db1); v.Allowed {
		t.Fatal("selector grant outlived its duration")
	}
}

func TestForSessionGrant(t *testing.T) {
	ctx := context.Background()
	e := newEnvRoles(t, rulesRoles)
	if _, err := e.svc.Ask(ctx, e.who(t, "fsr"), Ask{Roles: []string{"dba"}, Reason: "x"}); err == nil || !strings.Contains(err.Error(), "dba may only be granted for one session: ask again with --for-session") {
		t.Fatalf("for_session_required: %v", err)
	}
	if !e.svc.ForSessionRequired(e.who(t, "fsr"), []string{"dba"}) || e.svc.ForSessionRequired(e.who(t, "bob"), []string{"dba"}) {
		t.Fatal("ForSessionRequired: want true for fsr's dba only")
	}
	r, err := e.svc.Ask(ctx, e.who(t, "fsr"), Ask{Roles: []string{"dba"}, Reason: "x", ForSession: true, Duration: time.Hour})
	if err != nil || !r.ForSession {
		t.Fatalf("for-session request: %+v %v", r, err)
	}
	e.review(t, "lee", r.ID, true)
	e.review(t, "mia", r.ID, true)

	// Sessions that do not depend on it leave it alone; the first that does binds it.
	if err := e.svc.BindSession(ctx, "s-other", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.BindSession(ctx, "s-1", []string{r.ID}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.BindSession(ctx, "s-1", []string{r.ID}); err != nil {
		t.Fatalf("rebinding the same session: %v", err)
	}
	if err := e.svc.BindSession(ctx, "s-2", []string{r.ID}); err == nil || !errors.Is(err, ErrRefused) {
		t.Fatalf("second session used a for-session grant: %v", err)
	}
	// Another session's end changes nothing.
	if err := e.svc.SessionEnded(ctx, "s-2", []string{r.ID}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if eff := e.who(t, "fsr"); !slices.Contains(eff.Subject.Roles, "dba") {
		t.Fatal("grant ended with a session it was not bound to")
	}
	e.clock.Advance(10 * time.Minute)
	if err := e.svc.SessionEnded(ctx, "s-1", []string{r.ID}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if eff := e.who(t, "fsr"); slices.Contains(eff.Subject.Roles, "dba") {
		t.Fatal("grant outlived its session")
	}
	got, _ := e.store.GetRequest(ctx, r.ID)
	if got.Session != "s-1" || !got.GrantEnd.Equal(e.clock.Now()) || e.aud.count(audit.TypeRequestSessionEnd) != 1 {
		t.Fatalf("after session end: %+v, %d audit events", got, e.aud.count(audit.TypeRequestSessionEnd))
	}
}

// The refusal hint offers the request for one login only where a grant of
// it would let the user in: a deny of a role they hold still wins.
func TestHintOffersTheOneLoginRequestWhereItHelps(t *testing.T) {
	e := newEnvRoles(t, `
users:
  - {name: bob, roles: [dev]}
  - {name: eve, roles: [dev, nodb]}
roles:
  - name: dev
    allow:
      request: {roles: [dba]}
  - name: nodb
    deny:
      node_labels: {team: data}
  - name: dba
    allow:
      logins: [postgres]
      node_labels: {team: data}
  - name: rev
    allow:
      review_requests: {roles: [dba]}
`)
	plain := "request one with: ssh bastion request dba --reason ..."
	for _, c := range []struct{ user, login, want string }{
		{"bob", "postgres", plain + ", or this login only with: ssh bastion request --node db-1 --login postgres --reason ..."},
		{"bob", "root", plain},
		{"eve", "postgres", plain},
	} {
		v := e.who(t, c.user).Decide(c.login, db1)
		if v.Allowed || v.Hint != c.want {
			t.Errorf("%s as %s on db-1: allowed %v, hint %q; want refused with %q", c.user, c.login, v.Allowed, v.Hint, c.want)
		}
	}
}

// The reviewers' notification of a new request says what its rule needs,
// and a one-login request names the login.
func TestCreatedNotificationSaysWhatTheRuleNeeds(t *testing.T) {
	e := newEnvRoles(t, rulesRoles)
	if _, err := e.svc.Ask(context.Background(), e.who(t, "bob"), Ask{Node: &db1, Login: "postgres", Reason: "INC-7"}); err != nil {
		t.Fatal(err)
	}
	if len(e.notes.msgs) != 1 {
		t.Fatalf("notifications %+v, want one", e.notes.msgs)
	}
	m := e.notes.msgs[0]
	if want := "needs 1 more approval from dba-lead and 1 more approval from manager"; m.Event != "created" || m.Approval != want {
		t.Errorf("created notification: event %q, approval %q; want %q", m.Event, m.Approval, want)
	}
	if got := notify.Asked(m.Request); got != "login postgres on db-1 (role dba)" {
		t.Errorf("Asked = %q", got)
	}
}

// TestCanReviewOnBehalfApproval: asked about an approval, the check also
// says when it would not count; a denial by the same person is fine.
func TestCanReviewOnBehalfApproval(t *testing.T) {
	ctx := context.Background()
	e := newEnvRoles(t, rulesRoles+`  - name: plugin
    allow:
      review_on_behalf: true
`)
	bot := Effective{}
	bot.Subject.User, bot.Subject.Roles, bot.pol = "bot:slack", []string{"plugin"}, e.pol.p
	r := e.create(t, "bob", "dba")
	approve, deny := true, false
	want := "their approval would not count: request " + r.ID + " needs 1 approval from dba-lead and 1 approval from manager"
	if _, cannot, err := e.svc.CanReviewOnBehalf(ctx, bot, "sec", r.ID, &approve); err != nil || cannot != want {
		t.Fatalf("sec approving: %q %v, want %q", cannot, err, want)
	}
	if _, err := e.svc.ReviewOnBehalf(ctx, bot, "sec", r.ID, true, "ok"); err == nil || err.Error() != want {
		t.Fatalf("sec's approval: %v, want %q", err, want)
	}
	for _, v := range []*bool{&deny, nil} {
		if _, cannot, err := e.svc.CanReviewOnBehalf(ctx, bot, "sec", r.ID, v); err != nil || cannot != "" {
			t.Fatalf("sec denying (%v): %q %v", v, cannot, err)
		}
	}
	if _, cannot, err := e.svc.CanReviewOnBehalf(ctx, bot, "lee", r.ID, &approve); err != nil || cannot != "" {
		t.Fatalf("lee approving: %q %v", cannot, err)
	}
}
