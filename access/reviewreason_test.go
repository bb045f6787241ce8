package access

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// TestReviewReasonRequired: a request for a role with
// options.review_reason_required cannot be approved or denied without a
// reason, directly or on someone's behalf; a reason of blanks is none; other
// roles still review without one.
func TestReviewReasonRequired(t *testing.T) {
	e := newEnvRoles(t, strings.Replace(testRoles, `  - name: dba
    allow:`, `  - name: dba
    options: {review_reason_required: true}
    allow:`, 1)+`  - name: plugin
    allow:
      review_on_behalf: true
`)
	ctx := context.Background()
	r := e.create(t, "bob", "dba")
	for _, approve := range []bool{true, false} {
		for _, reason := range []string{"", "  \t"} {
			_, err := e.svc.Review(ctx, e.who(t, "alice"), r.ID, approve, reason)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "a reason is required to review request "+r.ID+" (role dba asks reviewers to say why)") {
				t.Fatalf("approve=%v reason %q: %v, want the reason refusal", approve, reason, err)
			}
		}
	}
	// The plugin relays alice's review: the same rule.
	bot := Effective{}
	bot.Subject.User, bot.Subject.Roles, bot.pol = "bot:slack", []string{"plugin"}, e.pol.p
	if _, err := e.svc.ReviewOnBehalf(ctx, bot, "alice", r.ID, true, ""); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "a reason is required") {
		t.Fatalf("on behalf without a reason: %v", err)
	}
	// Someone who may not review learns nothing more than before.
	if _, err := e.svc.Review(ctx, e.who(t, "carol"), r.ID, true, ""); !errors.Is(err, ErrNoSuchRequest) {
		t.Fatalf("carol: %v, want no such request", err)
	}
	got, err := e.svc.ReviewOnBehalf(ctx, bot, "alice", r.ID, true, "INC-42 checked")
	if err != nil || len(got.Reviews) != 1 || got.Reviews[0].Reason != "INC-42 checked" {
		t.Fatalf("with a reason: %+v %v", got, err)
	}
	// web does not ask for a reason.
	w := e.create(t, "bob", "web")
	if got, err := e.svc.Review(ctx, e.who(t, "dave"), w.ID, true, ""); err != nil || got.State != storage.StateApproved {
		t.Fatalf("web without a reason: %+v %v", got, err)
	}
}
