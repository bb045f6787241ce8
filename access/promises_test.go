package access

// Tests of behaviour README.md promises that no other test proved.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// The README's audit table promises these fields: request.create names the
// one login of a resource request and a --for-session grant; request.review
// names the roles of an approval of some of them.
func TestRequestAuditFields(t *testing.T) {
	ctx := context.Background()
	e := newEnvRoles(t, rulesRoles)
	bob := e.who(t, "bob")

	if _, err := e.svc.Ask(ctx, bob, Ask{Node: &db1, Login: "postgres", Reason: "INC-7", ForSession: true, Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ev, ok := e.aud.last(audit.TypeRequestCreate)
	if !ok || ev.Fields["node"] != "db-1" || ev.Fields["login"] != "postgres" || ev.Fields["for_session"] != true {
		t.Fatalf("request.create of a one-login, one-session request: %+v", ev)
	}

	whole, err := e.svc.Ask(ctx, bob, Ask{Roles: []string{"dba", "web"}, Reason: "INC-8"})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ = e.aud.last(audit.TypeRequestCreate)
	for _, k := range []string{"node", "login", "for_session"} {
		if _, ok := ev.Fields[k]; ok {
			t.Errorf("request.create of a role request has %s: %+v", k, ev.Fields)
		}
	}

	if _, err := e.svc.ReviewWith(ctx, e.who(t, "lee"), whole.ID, ReviewVerdict{Approve: true, Reason: "db only", Roles: []string{"dba"}}); err != nil {
		t.Fatal(err)
	}
	ev, ok = e.aud.last(audit.TypeRequestReview)
	got, _ := ev.Fields["approved_roles"].([]string)
	if !ok || ev.Actor != "lee" || !slices.Equal(got, []string{"dba"}) {
		t.Fatalf("request.review of an approval of some roles: %+v", ev)
	}
	if _, err := e.svc.ReviewWith(ctx, e.who(t, "mia"), whole.ID, ReviewVerdict{Approve: true, Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	ev, _ = e.aud.last(audit.TypeRequestReview)
	if _, ok := ev.Fields["approved_roles"]; ok || ev.Actor != "mia" {
		t.Fatalf("request.review of a whole approval names approved_roles: %+v", ev)
	}
}

// A user token lasts at most an hour, whatever --ttl asks, and --ttl
// shortens it.
func TestUserTokenLastsAtMostAnHour(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, c := range []struct {
		ttl, want time.Duration
	}{{0, time.Hour}, {5 * time.Hour, time.Hour}, {time.Hour + time.Second, time.Hour}, {10 * time.Minute, 10 * time.Minute}} {
		tok, exp, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "alice"}, c.ttl)
		if err != nil || !strings.HasPrefix(tok, userTokenPrefix) {
			t.Fatalf("ttl %v: %q %v", c.ttl, tok, err)
		}
		if want := e.clock.Now().Add(c.want); !exp.Equal(want) {
			t.Errorf("ttl %v: expires %v, want %v", c.ttl, exp, want)
		}
	}
	if UserTokenMaxTTL != time.Hour {
		t.Errorf("UserTokenMaxTTL = %v, the README promises an hour", UserTokenMaxTTL)
	}
}

// failingAudit refuses every event, as a full disk or a dead database would.
type failingAudit struct{}

func (failingAudit) Append(context.Context, storage.Event) error {
	return errors.New("audit store down")
}

// A user token that cannot be audited is not issued (README: user.api_token
// is "refused if this cannot be written"), and what was stored does not
// authenticate.
func TestUserTokenRefusedWithoutAudit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	st := &loginSpy{Store: e.store}
	svc := New(st, e.pol, failingAudit{}, e.notes, Options{Clock: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	tok, _, err := svc.IssueUserToken(ctx, TokenSubject{User: "alice"}, 0)
	if err == nil || tok != "" || !strings.Contains(err.Error(), "audit") {
		t.Fatalf("IssueUserToken with the audit log down = %q, %v; want a refusal", tok, err)
	}
	if len(st.put) == 0 {
		t.Fatal("no token was stored: the test checks nothing")
	}
	for _, id := range st.put {
		if l, err := e.store.GetLogin(ctx, id); err == nil && !l.Revoked {
			t.Errorf("an unaudited token is stored unrevoked: %+v", l)
		}
	}
}

// loginSpy notes the ids of the logins stored through it.
type loginSpy struct {
	Store
	put []string
}

func (s *loginSpy) PutLogin(ctx context.Context, l storage.Login) error {
	s.put = append(s.put, l.ID)
	return s.Store.PutLogin(ctx, l)
}

// A user token carries the claims of the login it was obtained with: the
// roles claims_to_roles maps them to count at every call, and a grant
// approved after the token was issued counts too.
func TestUserTokenCarriesTheLoginsClaims(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	withClaims, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "zoe", Claims: map[string][]string{"groups": {"security"}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	without, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "zoe"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	eff, err := e.svc.Authenticate(ctx, withClaims)
	if err != nil || !slices.Contains(eff.Subject.Roles, "security") {
		t.Fatalf("token with groups=security: roles %v, %v; want security from claims_to_roles", eff.Subject.Roles, err)
	}
	if eff, err := e.svc.Authenticate(ctx, without); err != nil || slices.Contains(eff.Subject.Roles, "security") {
		t.Fatalf("token without claims: roles %v, %v", eff.Subject.Roles, err)
	}

	bob, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "bob"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := e.create(t, "bob", "dba")
	e.review(t, "alice", r.ID, true)
	e.review(t, "ivy", r.ID, true)
	if got, _ := e.store.GetRequest(ctx, r.ID); got.State != storage.StateApproved {
		t.Fatalf("request %+v not approved", got)
	}
	if eff, err := e.svc.Authenticate(ctx, bob); err != nil || !slices.Contains(eff.Subject.Roles, "dba") {
		t.Fatalf("bob's token after his grant: roles %v, %v; want dba", eff.Subject.Roles, err)
	}
}

// The group an approval counts in is decided by the reviewer's roles when
// they approve (recorded with the review), not when the rule is measured.
func TestApprovalCountsAsTheReviewersRolesWere(t *testing.T) {
	ctx := context.Background()
	e := newEnvRoles(t, rulesRoles)
	r := e.create(t, "bob", "dba")
	e.review(t, "lee", r.ID, true) // lee is a dba-lead now

	// lee becomes a manager instead; a bastion on the new policy measures.
	p, err := policy.Parse("roles.yaml", []byte(strings.Replace(rulesRoles,
		"{name: lee, roles: [security, dba-lead]}", "{name: lee, roles: [security, manager]}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	e.pol = staticPolicy{p}
	e.svc = e.newService(e.store)
	got, _ := e.store.GetRequest(ctx, r.ID)
	if st := e.svc.Explain(got).Status; st != "needs 1 more approval from manager" {
		t.Fatalf("after lee's roles changed: %q, want lee still counted as dba-lead", st)
	}
	got = e.review(t, "mia", r.ID, true)
	if got.State != storage.StateApproved {
		t.Fatalf("a dba-lead (then) and a manager approved, yet %s: %s", got.State, e.svc.Explain(got).Status)
	}
}

// request.session_end names the requester, roles, the session the grant was
// bound to and when the grant ended (README audit table).
func TestSessionEndAuditFields(t *testing.T) {
	ctx := context.Background()
	e := newEnvRoles(t, rulesRoles)
	r, err := e.svc.Ask(ctx, e.who(t, "fsr"), Ask{Roles: []string{"dba"}, Reason: "x", ForSession: true, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.review(t, "lee", r.ID, true)
	e.review(t, "mia", r.ID, true)
	if err := e.svc.BindSession(ctx, "s-1", []string{r.ID}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Minute)
	if err := e.svc.SessionEnded(ctx, "s-1", []string{r.ID}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	ev, ok := e.aud.last(audit.TypeRequestSessionEnd)
	roles, _ := ev.Fields["roles"].([]string)
	end, _ := ev.Fields["grant_end"].(time.Time)
	if !ok || ev.Actor != "gatehouse" || ev.Target != r.ID || ev.Fields["requester"] != "fsr" || !slices.Equal(roles, []string{"dba"}) ||
		ev.Fields["session"] != "s-1" || !end.Equal(e.clock.Now()) {
		t.Fatalf("request.session_end %+v", ev)
	}
}
