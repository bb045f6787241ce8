package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func scan(t *testing.T, s *Service) {
	t.Helper()
	if err := s.Scan(context.Background()); err != nil {
		t.Fatalf("Scan: %v", err)
	}
}

func kinds(cs []Change) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Kind+":"+c.User+":"+c.RequestID)
	}
	return strings.Join(out, " ")
}

func TestPendingExpiry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	other := e.newService(openStore(t, e.path)) // a second bastion
	r := e.create(t, "bob", "dba")
	scan(t, e.svc)
	scan(t, other)

	e.clock.Advance(24*time.Hour - time.Second)
	scan(t, e.svc)
	if got, _ := e.store.GetRequest(ctx, r.ID); got.State != storage.StatePending {
		t.Fatalf("a second before Expires the request is %s", got.State)
	}

	e.clock.Advance(time.Second)
	scan(t, other)
	scan(t, e.svc)
	got, err := e.store.GetRequest(ctx, r.ID)
	if err != nil || got.State != storage.StateExpired {
		t.Fatalf("at Expires the request is %s, %v; want EXPIRED", got.State, err)
	}
	if n := e.aud.count(audit.TypeRequestExpire); n != 1 {
		t.Errorf("two bastions scanning wrote %d %s events, want exactly 1", n, audit.TypeRequestExpire)
	}
	if ev := e.notes.events(); strings.Count(strings.Join(ev, " "), "expired") != 1 {
		t.Errorf("notifications %v, want one expired", ev)
	}
}

func TestGrantChanges(t *testing.T) {
	e := newEnv(t)
	ch, cancel := e.svc.Subscribe()
	defer cancel()
	scan(t, e.svc)

	r := e.create(t, "bob", "web")
	scan(t, e.svc)
	if got := drain(ch); len(got) != 0 {
		t.Fatalf("a pending request changed nothing, got %s", kinds(got))
	}

	e.review(t, "dave", r.ID, true)
	scan(t, e.svc)
	scan(t, e.svc)
	if got := kinds(drain(ch)); got != "grant-started:bob:"+r.ID {
		t.Fatalf("after approval: %q, want one grant-started", got)
	}

	e.clock.Advance(2*time.Hour - time.Nanosecond)
	scan(t, e.svc)
	if got := drain(ch); len(got) != 0 {
		t.Fatalf("before the grant's end: %s", kinds(got))
	}
	e.clock.Advance(time.Nanosecond)
	scan(t, e.svc)
	scan(t, e.svc)
	got := drain(ch)
	if kinds(got) != "grant-ended:bob:"+r.ID {
		t.Fatalf("at the grant's end: %q, want one grant-ended", kinds(got))
	}
	want := fmt.Sprintf("gatehouse: access via request %s ended at 11:00; session closed", r.ID)
	if n := got[0].Notice(); n != want {
		t.Errorf("Notice() = %q, want %q", n, want)
	}
	if eff := e.who(t, "bob"); len(eff.GrantsFor("web")) != 0 {
		t.Errorf("ended grant still effective: %v", eff.Subject.Roles)
	}
}

// TestRevokeOnOtherBastion: the watch is store-driven, so a revoke made on
// another bastion ends access here.
func TestRevokeOnOtherBastion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	other := e.newService(openStore(t, e.path))
	ch, cancel := e.svc.Subscribe()
	defer cancel()
	r := e.create(t, "bob", "web")
	e.review(t, "dave", r.ID, true)
	scan(t, e.svc)
	drain(ch)

	e.clock.Advance(10 * time.Minute)
	if _, err := other.Revoke(ctx, e.who(t, "sam"), r.ID, "incident over"); err != nil {
		t.Fatal(err)
	}
	scan(t, e.svc)
	got := drain(ch)
	if kinds(got) != "grant-ended:bob:"+r.ID || !strings.Contains(got[0].Reason, "revoked by sam") || !got[0].At.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("after a revoke elsewhere: %+v", got)
	}
}

// TestRunWakesOnLocalChange drives Run for real: a lock placed in this
// process reaches subscribers without anyone calling Scan.
func TestRunWakesOnLocalChange(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	e := newEnv(t)
	ch, cancel := e.svc.Subscribe()
	defer cancel()
	done := make(chan error)
	go func() { done <- e.svc.Run(ctx) }()

	if _, err := e.svc.Lock(ctx, e.who(t, "sam"), "bob", "compromised", 0); err != nil {
		t.Fatal(err)
	}
	c := <-ch
	if c.Kind != ChangeLocked || c.User != "bob" || c.Reason != "compromised" {
		t.Errorf("got %+v, want bob locked", c)
	}
	if n := c.Notice(); strings.Contains(n, "compromised") {
		t.Errorf("notice %q leaks the lock reason", n)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestLocks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	ch, cancel := e.svc.Subscribe()
	defer cancel()

	refusals := []struct {
		actor, user, reason string
		ttl                 time.Duration
		want                string
	}{
		{"carol", "bob", "x", 0, "you may not lock users"},
		{"alice", "bob", "x", 0, "you may not lock users"},
		{"sam", "bob", " ", 0, "a reason is required"},
		{"sam", "", "x", 0, "name the user"},
		{"sam", "bob", "x", -time.Hour, "ttl must be positive"},
	}
	for _, tt := range refusals {
		if _, err := e.svc.Lock(ctx, e.who(t, tt.actor), tt.user, tt.reason, tt.ttl); err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s locks %q: %v, want %q", tt.actor, tt.user, err, tt.want)
		}
	}
	if e.aud.count(audit.TypeUserLock) != 0 {
		t.Fatal("refused locks were audited as placed")
	}

	// A locked user loses even granted roles and may not request more.
	r := e.create(t, "bob", "web")
	e.review(t, "dave", r.ID, true)
	scan(t, e.svc)
	drain(ch)
	if _, err := e.svc.Lock(ctx, e.who(t, "sam"), "bob", "laptop stolen", time.Hour); err != nil {
		t.Fatal(err)
	}
	bob := e.who(t, "bob")
	if len(bob.Subject.Roles) != 0 || bob.Lock == nil || bob.Lock.By != "sam" {
		t.Fatalf("locked bob: %+v", bob)
	}
	if _, err := e.svc.Create(ctx, bob, []string{"dba"}, "x", 0); err == nil {
		t.Error("a locked user filed a request")
	}
	if ls, err := e.svc.Locks(ctx, e.who(t, "sam")); err != nil || len(ls) != 1 || ls[0].User != "bob" {
		t.Errorf("Locks = %+v, %v", ls, err)
	}
	if _, err := e.svc.Locks(ctx, e.who(t, "carol")); !errors.Is(err, ErrRefused) {
		t.Errorf("carol listed locks: %v", err)
	}
	scan(t, e.svc)
	// The lock revoked the grant: its end is a change watchers hear of.
	if got := kinds(drain(ch)); got != "locked:bob: grant-ended:bob:"+r.ID {
		t.Errorf("after lock: %q", got)
	}

	// The ttl runs out: bob is back, without the grant the lock ended.
	e.clock.Advance(time.Hour)
	if bob := e.who(t, "bob"); bob.Lock != nil || len(bob.GrantsFor("web")) != 0 || len(bob.Subject.Roles) != 1 {
		t.Errorf("after the lock's ttl bob is %+v", bob)
	}
	scan(t, e.svc)
	if got := kinds(drain(ch)); got != "unlocked:bob:" {
		t.Errorf("after the ttl: %q", got)
	}
	if err := e.svc.Unlock(ctx, Admin(), "bob"); err == nil || !strings.Contains(err.Error(), "bob is not locked") {
		t.Errorf("unlocking an unlocked user: %v", err)
	}

	// The admin identity locks and unlocks without any role.
	if _, err := e.svc.Lock(ctx, Admin(), "carol", "offboarding", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Unlock(ctx, e.who(t, "carol"), "carol"); !errors.Is(err, ErrRefused) {
		t.Errorf("carol unlocked herself: %v", err)
	}
	if err := e.svc.Unlock(ctx, Admin(), "carol"); err != nil {
		t.Fatal(err)
	}
	if e.aud.count(audit.TypeUserLock) != 2 || e.aud.count(audit.TypeUserUnlock) != 1 {
		t.Errorf("audit: %d locks, %d unlocks; want 2 and 1", e.aud.count(audit.TypeUserLock), e.aud.count(audit.TypeUserUnlock))
	}
}

func TestSubscriberCancelDoesNotBlockScan(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	_, cancel := e.svc.Subscribe()
	cancel()
	cancel() // idempotent
	for i := range 100 {
		if _, err := e.svc.Lock(ctx, Admin(), fmt.Sprintf("u%d", i), "x", 0); err != nil {
			t.Fatal(err)
		}
	}
	// 100 changes exceed the channel's buffer; with the subscriber gone
	// Scan must not wait for it.
	scan(t, e.svc)
}

// TestScanPagesPastRecentGrants: a long grant hidden behind hundreds of
// newer, shorter ones is still seen ending.
func TestScanPagesPastRecentGrants(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dave := e.who(t, "dave")
	long, err := e.svc.Create(ctx, e.who(t, "bob"), []string{"web"}, "x", 4*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.review(t, "dave", long.ID, true)
	for range 260 { // just past the first page of 256
		r, err := e.svc.Create(ctx, e.who(t, "carol"), []string{"web"}, "x", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Review(ctx, dave, r.ID, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	ch, cancel := e.svc.Subscribe()
	defer cancel()
	// Read changes as they come: 260 of them overflow the buffer.
	got := make(chan []Change)
	go func() {
		var cs []Change
		for c := range ch {
			if c.Kind == ChangeGrantEnded && c.User == "bob" {
				cs = append(cs, c)
				got <- cs
				return
			}
		}
	}()
	scan(t, e.svc)
	e.clock.Advance(time.Hour)
	scan(t, e.svc)
	e.clock.Advance(3 * time.Hour)
	scan(t, e.svc)
	if cs := <-got; cs[0].RequestID != long.ID {
		t.Errorf("ended: %+v, want %s", cs, long.ID)
	}
}

func TestMaxGrant(t *testing.T) {
	e := newEnv(t)
	svc := New(e.store, e.pol, e.aud, nil, Options{Clock: e.clock.Now, MaxGrant: time.Hour})
	_, err := svc.Create(context.Background(), e.who(t, "bob"), []string{"web"}, "x", 2*time.Hour)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "exceeds this bastion's limit of 1h") {
		t.Errorf("2h grant with MaxGrant 1h: %v", err)
	}
}
