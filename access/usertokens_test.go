package access

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// TestUserToken: a token minted for a person acts as that person with their
// current standing; it ends at its ttl, at the credential's end, at a lock
// (for good, even after unlock) and is stored only as a hash.
func TestUserToken(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	sub := TokenSubject{User: "alice", LoginID: "login-1", KeyFP: "SHA256:k", NotAfter: t0.Add(30 * time.Minute)}
	tok, exp, err := e.svc.IssueUserToken(ctx, sub, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, userTokenPrefix) || len(tok) != len(userTokenPrefix)+43 {
		t.Fatalf("token %q: want %s and 256 random bits", tok, userTokenPrefix)
	}
	if !exp.Equal(sub.NotAfter) {
		t.Fatalf("expires %v, want the certificate's end %v (before the 1h maximum)", exp, sub.NotAfter)
	}
	if _, err := e.store.GetLogin(ctx, tok); err == nil {
		t.Fatal("the token itself is stored")
	}
	ev, ok := e.aud.last(audit.TypeUserAPIToken)
	if !ok || ev.Actor != "alice" || ev.Target != "alice" || ev.Fields["login_id"] != "login-1" || strings.Contains(ev.Fields["token_sha256"].(string), tok) {
		t.Fatalf("user.api_token event %+v", ev)
	}

	eff, err := e.svc.Authenticate(ctx, tok)
	if err != nil || eff.User() != "alice" || !eff.userToken || len(eff.Subject.Roles) == 0 {
		t.Fatalf("Authenticate = %+v %v, want alice with her roles", eff.Subject, err)
	}
	// Alice reviews as herself with it, never on someone's behalf.
	r := e.create(t, "bob", "dba")
	if _, err := e.svc.ReviewOnBehalf(ctx, eff, "ivy", r.ID, true, "ok"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "acts only as its user") {
		t.Fatalf("on behalf with a user token: %v", err)
	}
	if got, err := e.svc.Review(ctx, eff, r.ID, true, "checked"); err != nil || got.Reviews[0].Reviewer != "alice" {
		t.Fatalf("review with a user token: %+v %v", got, err)
	}

	for _, bad := range []string{"", "ghusr_", tok + "x", "ghusr_" + strings.Repeat("A", 200)} {
		if _, err := e.svc.Authenticate(ctx, bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("Authenticate(%q) = %v, want ErrBadToken", bad, err)
		}
	}
	for _, who := range []string{"bot:slack", "admin", "admin:ops", ""} {
		if _, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: who}, 0); !errors.Is(err, ErrRefused) {
			t.Errorf("token for %q: %v, want a refusal", who, err)
		}
	}
	if _, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "bob", NotAfter: t0}, 0); !errors.Is(err, ErrRefused) {
		t.Errorf("token for an expired certificate: %v, want a refusal", err)
	}

	// Expiry is exclusive and checked at each use.
	short, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "bob"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute)
	if _, err := e.svc.Authenticate(ctx, short); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token: %v", err)
	}

	// A lock ends alice's tokens for good; while locked she gets none.
	if _, err := e.svc.Lock(ctx, e.who(t, "sam"), "alice", "laptop stolen", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token after a lock: %v", err)
	}
	if _, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "alice"}, 0); !errors.Is(err, ErrRefused) {
		t.Fatalf("token while locked: %v", err)
	}
	if err := e.svc.Unlock(ctx, e.who(t, "sam"), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token after unlock: %v (a lock ends it for good)", err)
	}
}

// TestUserTokensPruned: issuing a token removes API tokens that expired
// more than a day ago.
func TestUserTokensPruned(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	old, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "bob"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(25 * time.Hour)
	if _, _, err := e.svc.IssueUserToken(ctx, TokenSubject{User: "alice"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetLogin(ctx, userTokenID(old)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a token expired a day ago is still stored: %v", err)
	}
}
