package access

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/notify"
)

// TestCreatedNotificationNamesReviewers: the created message carries the
// reviewers roles.yaml names for the roles (never the requester, never a
// locked user), which the e-mail target turns into recipients.
func TestCreatedNotificationNamesReviewers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, e.who(t, "bob"), []string{"dba"}, "incident", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Lock(ctx, e.who(t, "sam"), "alice", "on leave", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, e.who(t, "ivy"), []string{"dba"}, "migration", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, e.who(t, "bob"), []string{"web"}, "deploy", time.Hour); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	e.notes.mu.Lock()
	for _, m := range e.notes.msgs {
		if m.Event == notify.EventCreated {
			got = append(got, m.Reviewers)
		}
	}
	e.notes.mu.Unlock()
	// "rev*" users review dba through claims only and are not known here.
	want := [][]string{{"alice", "ivy"}, nil, {"dave"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("reviewers of the created messages: %q, want %q (bob's dba, ivy's dba after alice's lock, bob's web)", got, want)
	}
}
