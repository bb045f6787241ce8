package access

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// botRoles extends the people of testRoles with a plugin role, an
// auto-approver role and a reviewer whose right comes from a claim.
const botRoles = testRoles + `
  - name: plugin
    allow:
      review_on_behalf: true
  - name: autoapprove
    allow:
      review_requests: {roles: [web]}
`

func newBotEnv(t *testing.T) *env {
	t.Helper()
	p, err := policy.Parse("roles.yaml", []byte(botRoles))
	if err != nil {
		t.Fatalf("parse roles: %v", err)
	}
	e := &env{aud: &memAudit{}, notes: &memNotes{}, clock: &fakeClock{now: t0}, pol: staticPolicy{p},
		path: filepath.Join(t.TempDir(), "gatehouse.db")}
	e.store = openStore(t, e.path)
	e.svc = e.newService(e.store)
	return e
}

func (e *env) addBot(t *testing.T, name string, roles ...string) (Effective, string) {
	t.Helper()
	_, tok, err := e.svc.AddBot(context.Background(), Admin(), name, roles, time.Hour)
	if err != nil {
		t.Fatalf("add bot %s: %v", name, err)
	}
	eff, err := e.svc.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatalf("authenticate bot %s: %v", name, err)
	}
	return eff, tok
}

func (a *memAudit) last(typ string) (storage.Event, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.evs) - 1; i >= 0; i-- {
		if a.evs[i].Type == typ {
			return a.evs[i], true
		}
	}
	return storage.Event{}, false
}

func TestBotTokens(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	_, tok, err := e.svc.AddBot(ctx, Admin(), "slack", []string{"plugin"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, tokenPrefix) || len(tok) != len(tokenPrefix)+43 {
		t.Fatalf("token %q: want %s + 43 base64url characters (256 bits)", tok, tokenPrefix)
	}
	ev, ok := e.aud.last(audit.TypeBotAdd)
	if !ok || ev.Actor != AdminName || ev.Target != "bot:slack" {
		t.Fatalf("bot.add event = %+v, %v", ev, ok)
	}
	eff, err := e.svc.Authenticate(ctx, tok)
	if err != nil || eff.User() != "bot:slack" || len(eff.Subject.Roles) != 1 || eff.Subject.Roles[0] != "plugin" {
		t.Fatalf("Authenticate = %+v, %v", eff.Subject, err)
	}
	// Only the hash is stored.
	if _, _, err := e.store.BotByToken(ctx, tok, t0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the store finds the bot by the plain token: %v", err)
	}

	refusals := []struct {
		name  string
		actor Effective
		bot   string
		roles []string
		ttl   time.Duration
		msg   string
	}{
		{"not the admin", e.who(t, "sam"), "x", []string{"plugin"}, 0, "only the operator"},
		{"bad name", Admin(), "Slack Bot", []string{"plugin"}, 0, "is not valid"},
		{"colon in name", Admin(), "bot:x", []string{"plugin"}, 0, "is not valid"},
		{"no roles", Admin(), "x", nil, 0, "at least one role"},
		{"unknown role", Admin(), "x", []string{"plugn"}, 0, `role "plugn" is not defined`},
		{"negative ttl", Admin(), "x", []string{"plugin"}, -time.Hour, "must be positive"},
		{"duplicate", Admin(), "slack", []string{"plugin"}, 0, "already exists"},
	}
	for _, tc := range refusals {
		_, _, err := e.svc.AddBot(ctx, tc.actor, tc.bot, tc.roles, tc.ttl)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: AddBot = %v, want a refusal with %q", tc.name, err, tc.msg)
		}
	}

	for _, bad := range []string{"", "ghbot_", tok + "x", "ghbot_" + strings.Repeat("A", 43), strings.TrimPrefix(tok, tokenPrefix)} {
		if _, err := e.svc.Authenticate(ctx, bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("Authenticate(%q) = %v, want ErrBadToken", bad, err)
		}
	}

	// Expiry: the token stops working at its end.
	e.clock.Advance(time.Hour)
	if _, err := e.svc.Authenticate(ctx, tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token: %v, want ErrBadToken", err)
	}
}

func TestBotRemoveEndsTokenOnEveryBastion(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	other := e.newService(openStore(t, e.path)) // a second bastion, same database
	_, tok := e.addBot(t, "jira", "plugin")
	if _, err := other.Authenticate(ctx, tok); err != nil {
		t.Fatalf("bastion 2 refuses a fresh token: %v", err)
	}
	if err := e.svc.RemoveBot(ctx, Admin(), "jira"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Authenticate(ctx, tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("bastion 2 after bot rm: %v, want ErrBadToken", err)
	}
	if ev, ok := e.aud.last(audit.TypeBotRemove); !ok || ev.Target != "bot:jira" || ev.Actor != AdminName {
		t.Fatalf("bot.rm event = %+v, %v", ev, ok)
	}
	if err := e.svc.RemoveBot(ctx, Admin(), "jira"); !errors.Is(err, ErrRefused) {
		t.Fatalf("second rm: %v, want a refusal", err)
	}
}

func TestBotLockedHasNoRoles(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	_, tok := e.addBot(t, "slack", "plugin")
	if _, err := e.svc.Lock(ctx, Admin(), "bot:slack", "leaked token", 0); err != nil {
		t.Fatal(err)
	}
	eff, err := e.svc.Authenticate(ctx, tok)
	if err != nil || !eff.Locked() || len(eff.Subject.Roles) != 0 {
		t.Fatalf("locked bot = %+v locked=%v, %v", eff.Subject, eff.Locked(), err)
	}
	r := e.create(t, "bob", "dba")
	if _, err := e.svc.ReviewOnBehalf(ctx, eff, "alice", r.ID, true, ""); !errors.Is(err, ErrRefused) {
		t.Fatalf("locked bot reviews on behalf: %v", err)
	}
}

func TestReviewOnBehalf(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	plugin, _ := e.addBot(t, "slack", "plugin")
	plain, _ := e.addBot(t, "noplugin", "autoapprove")

	r := e.create(t, "bob", "dba") // security reviews dba with two approvals

	refusals := []struct {
		name, person, msg string
		bot               Effective
	}{
		{"bot without review_on_behalf", "alice", "may not review on behalf", plain},
		{"the requester himself", "bob", "bob cannot review their own request", plugin},
		{"someone who may not review", "carol", "carol may not review request", plugin},
		{"a bot as the person", "bot:noplugin", "must name a person", plugin},
		{"the admin identity", "admin", "must name a person", plugin},
		{"empty", "", "must name a person", plugin},
	}
	for _, tc := range refusals {
		_, err := e.svc.ReviewOnBehalf(ctx, tc.bot, tc.person, r.ID, true, "ok")
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: ReviewOnBehalf = %v, want a refusal with %q", tc.name, err, tc.msg)
		}
	}

	// alice through the plugin: her review, counted once.
	got, err := e.svc.ReviewOnBehalf(ctx, plugin, "alice", r.ID, true, "go ahead")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != storage.StatePending || len(got.Reviews) != 1 || got.Reviews[0].Reviewer != "alice" || got.Reviews[0].Via != "bot:slack" {
		t.Fatalf("after alice via slack: %+v", got)
	}
	ev, _ := e.aud.last(audit.TypeRequestReview)
	if ev.Actor != "alice" || ev.Fields["via"] != "bot:slack" || ev.Outcome != "approve" {
		t.Fatalf("request.review event = %+v", ev)
	}
	// Directly or through the bot again, alice does not count twice.
	if _, err := e.svc.Review(ctx, e.who(t, "alice"), r.ID, true, ""); err == nil || !strings.Contains(err.Error(), "already reviewed") {
		t.Fatalf("alice directly after her review via slack: %v", err)
	}
	if _, err := e.svc.ReviewOnBehalf(ctx, plugin, "alice", r.ID, true, ""); err == nil || !strings.Contains(err.Error(), "alice already reviewed") {
		t.Fatalf("alice via slack twice: %v", err)
	}
	// The threshold still needs a second person: ivy, whose review decides.
	got, err = e.svc.ReviewOnBehalf(ctx, plugin, "ivy", r.ID, true, "")
	if err != nil || got.State != storage.StateApproved || got.StateBy != "ivy" {
		t.Fatalf("ivy via slack: %+v, %v", got, err)
	}
	ev, _ = e.aud.last(audit.TypeRequestApprove)
	if ev.Actor != "ivy" || ev.Fields["via"] != "bot:slack" {
		t.Fatalf("request.approve event = %+v", ev)
	}

	// A locked person cannot review through a bot either.
	r2 := e.create(t, "carol", "dba")
	if _, err := e.svc.Lock(ctx, Admin(), "alice", "investigation", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ReviewOnBehalf(ctx, plugin, "alice", r2.ID, false, ""); err == nil || !strings.Contains(err.Error(), "alice is locked") {
		t.Fatalf("locked alice via slack: %v", err)
	}
}

type claimsOf map[string]map[string][]string

func (c claimsOf) LatestClaims(_ context.Context, user string) (map[string][]string, error) {
	return c[user], nil
}

func TestReviewOnBehalfUsesTheLatestClaims(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	e.svc = New(e.store, e.pol, e.aud, e.notes, Options{Clock: e.clock.Now, Claims: claimsOf{
		"revzoe": {"groups": {"security"}}, // reviewer by claims_to_roles only
	}})
	plugin, _ := e.addBot(t, "slack", "plugin")
	r := e.create(t, "bob", "dba")
	if _, err := e.svc.ReviewOnBehalf(ctx, plugin, "revzoe", r.ID, true, ""); err != nil {
		t.Fatalf("revzoe (security by claim) via slack: %v", err)
	}
	if _, err := e.svc.ReviewOnBehalf(ctx, plugin, "revnoclaims", r.ID, true, ""); !errors.Is(err, ErrRefused) {
		t.Fatalf("a person without the claim: %v, want a refusal", err)
	}
}

func TestBotAsReviewerAndRequester(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	auto, _ := e.addBot(t, "auto", "autoapprove")
	r := e.create(t, "bob", "web")
	got, err := e.svc.Review(ctx, auto, r.ID, true, "auto")
	if err != nil || got.State != storage.StateApproved || got.StateBy != "bot:auto" {
		t.Fatalf("auto-approver bot: %+v, %v", got, err)
	}
	// A bot with dev may request for itself; the request is the bot's.
	dev, _ := e.addBot(t, "ci", "dev")
	q, err := e.svc.Create(ctx, dev, []string{"web"}, "deploy", time.Hour)
	if err != nil || q.User != "bot:ci" {
		t.Fatalf("bot request: %+v, %v", q, err)
	}
	if _, err := e.svc.Review(ctx, auto, q.ID, true, ""); err != nil {
		t.Fatalf("auto approves ci: %v", err)
	}
	ci, err := e.svc.botEffective(ctx, storage.Bot{Name: "ci", Roles: []string{"dev"}})
	if err != nil || len(ci.Grants) != 1 || !strings.Contains(strings.Join(ci.Subject.Roles, ","), "web") {
		t.Fatalf("ci after approval: %+v, %v", ci.Subject, err)
	}
}

func TestPluginSeesEveryRequest(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	plugin, _ := e.addBot(t, "slack", "plugin")
	other, _ := e.addBot(t, "other", "autoapprove")
	r := e.create(t, "bob", "dba")
	if _, err := e.svc.Get(ctx, plugin, r.ID); err != nil {
		t.Fatalf("plugin cannot see bob's dba request: %v", err)
	}
	if _, err := e.svc.Get(ctx, other, r.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a bot reviewing only web sees a dba request: %v", err)
	}
	list, err := e.svc.List(ctx, plugin, storage.RequestFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("plugin list: %d, %v", len(list), err)
	}
}

// TestCanReviewOnBehalf: the check a plugin makes before it asks a person
// for a reason answers what the review itself would, because both decide
// through checkReview; it changes nothing.
func TestCanReviewOnBehalf(t *testing.T) {
	ctx := context.Background()
	e := newBotEnv(t)
	plugin, _ := e.addBot(t, "slack", "plugin")
	plain, _ := e.addBot(t, "noplugin", "autoapprove")
	r := e.create(t, "bob", "dba")

	// The bot's own right, and the person's name, are the caller's errors.
	if _, _, err := e.svc.CanReviewOnBehalf(ctx, plain, "alice", r.ID, nil); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "may not review on behalf") {
		t.Fatalf("bot without review_on_behalf: %v", err)
	}
	if _, _, err := e.svc.CanReviewOnBehalf(ctx, plugin, "bot:noplugin", r.ID, nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("a bot as the person: %v", err)
	}
	if _, _, err := e.svc.CanReviewOnBehalf(ctx, plugin, "alice", "nosuchid", nil); !errors.Is(err, ErrNoSuchRequest) {
		t.Fatalf("unknown id: %v", err)
	}

	// may answers whether person may review r now; when not, the review
	// on her behalf is refused with the same line, and nothing is recorded.
	may := func(person, id string, want string) {
		t.Helper()
		got, cannot, err := e.svc.CanReviewOnBehalf(ctx, plugin, person, id, nil)
		if err != nil || got.ID != id || !strings.Contains(cannot, want) || (want == "") != (cannot == "") {
			t.Fatalf("CanReviewOnBehalf(%s) = %q, %v; want %q", person, cannot, err, want)
		}
		if cannot == "" {
			return
		}
		before, _ := e.store.GetRequest(ctx, id)
		_, err = e.svc.ReviewOnBehalf(ctx, plugin, person, id, true, "a reason")
		if err == nil || err.Error() != cannot {
			t.Fatalf("review by %s after the check said %q: %v", person, cannot, err)
		}
		if after, _ := e.store.GetRequest(ctx, id); len(after.Reviews) != len(before.Reviews) || after.State != before.State {
			t.Fatalf("a refused review changed the request: %+v", after)
		}
	}
	may("alice", r.ID, "")
	may("ivy", r.ID, "")
	may("bob", r.ID, "bob cannot review their own request")
	may("carol", r.ID, "carol may not review request "+r.ID)
	if got, err := e.store.GetRequest(ctx, r.ID); err != nil || len(got.Reviews) != 0 {
		t.Fatalf("checks recorded a review: %+v %v", got, err)
	}

	if _, err := e.svc.ReviewOnBehalf(ctx, plugin, "alice", r.ID, true, "ok"); err != nil {
		t.Fatal(err)
	}
	may("alice", r.ID, "alice already reviewed request "+r.ID)
	if _, err := e.svc.ReviewOnBehalf(ctx, plugin, "ivy", r.ID, true, "ok"); err != nil {
		t.Fatal(err)
	}
	may("ivy", r.ID, "request "+r.ID+" is already approved")

	// Locked, she may not review, however she would come.
	r2 := e.create(t, "carol", "dba")
	if _, err := e.svc.Lock(ctx, Admin(), "alice", "investigation", 0); err != nil {
		t.Fatal(err)
	}
	may("alice", r2.ID, "alice is locked and may not review requests")

	// Past its expiry a request is reviewed by no one; the check says so
	// and, unlike the review, leaves moving it to EXPIRED to the watch.
	e.clock.Advance(48 * time.Hour)
	if got, cannot, err := e.svc.CanReviewOnBehalf(ctx, plugin, "ivy", r2.ID, nil); err != nil || !strings.Contains(cannot, "expired") || got.State != storage.StatePending {
		t.Fatalf("expired request: %q %+v %v", cannot, got.State, err)
	}
}
