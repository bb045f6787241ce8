package access

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func TestEffective(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	r := e.create(t, "bob", "dba")
	e.review(t, "alice", r.ID, true)
	e.review(t, "ivy", r.ID, true)

	eff := e.who(t, "bob")
	if !slices.Equal(eff.Subject.Roles, []string{"dev", "dba"}) || !slices.Equal(eff.Base, []string{"dev"}) {
		t.Fatalf("bob with a dba grant: roles %v base %v", eff.Subject.Roles, eff.Base)
	}
	if got := eff.GrantsFor("dba"); !slices.Equal(got, []string{r.ID}) {
		t.Errorf("GrantsFor(dba) = %v, want [%s]", got, r.ID)
	}
	if got := eff.GrantsFor("dev"); len(got) != 0 {
		t.Errorf("GrantsFor(dev) = %v: a static role has no grant", got)
	}

	claims, err := e.svc.Effective(ctx, "zed", map[string][]string{"groups": {"security"}})
	if err != nil || !slices.Equal(claims.Subject.Roles, []string{"security"}) {
		t.Errorf("claim-mapped roles = %v, %v; want [security]", claims.Subject.Roles, err)
	}

	if _, err := e.svc.Lock(ctx, Admin(), "bob", "laptop stolen", 0); err != nil {
		t.Fatal(err)
	}
	locked := e.who(t, "bob")
	if len(locked.Subject.Roles) != 0 || locked.Lock == nil || locked.Lock.Reason != "laptop stolen" || !locked.Locked() {
		t.Errorf("locked bob: roles %v lock %+v; want no roles and the lock", locked.Subject.Roles, locked.Lock)
	}
	if err := e.svc.Unlock(ctx, Admin(), "bob"); err != nil {
		t.Fatal(err)
	}

	e.clock.Advance(2 * time.Hour) // the grant's duration
	if got := e.who(t, "bob").Subject.Roles; !slices.Equal(got, []string{"dev"}) {
		t.Errorf("after the grant ended bob has %v, want [dev]", got)
	}

	// Fail closed: no store, no roles.
	e.store.Close()
	if eff, err := e.svc.Effective(ctx, "bob", nil); err == nil {
		t.Errorf("Effective with a closed store = %+v, nil; want an error", eff)
	}
}

func TestCreate(t *testing.T) {
	idRE := regexp.MustCompile(`^[a-z2-7]{14}$`)
	tests := []struct {
		name     string
		user     string
		roles    []string
		reason   string
		d        time.Duration
		lock     bool
		wantErr  string
		wantDur  time.Duration
		wantRole []string
	}{
		{name: "default duration", user: "bob", roles: []string{"dba"}, reason: "incident", wantDur: time.Hour, wantRole: []string{"dba"}},
		{name: "explicit duration", user: "bob", roles: []string{"dba", " web", "dba"}, reason: "incident", d: 4 * time.Hour, wantDur: 4 * time.Hour, wantRole: []string{"dba", "web"}},
		{name: "too long", user: "bob", roles: []string{"dba"}, reason: "incident", d: 5 * time.Hour, wantErr: "exceeds the maximum 4h"},
		{name: "reason required", user: "bob", roles: []string{"dba"}, reason: "  ", wantErr: "a reason is required"},
		{name: "not requestable", user: "alice", roles: []string{"dba"}, reason: "x", wantErr: "role dba is not requestable by you"},
		{name: "unknown role", user: "bob", roles: []string{"root"}, reason: "x", wantErr: "role root is not requestable by you"},
		{name: "no roles", user: "bob", roles: []string{" "}, reason: "x", wantErr: "name at least one role"},
		{name: "negative duration", user: "bob", roles: []string{"dba"}, reason: "x", d: -time.Hour, wantErr: "duration must be positive"},
		{name: "locked", user: "bob", roles: []string{"dba"}, reason: "x", lock: true, wantErr: "you are locked"},
		{name: "admin", user: "admin", roles: []string{"dba"}, reason: "x", wantErr: "admin identity cannot request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			if tt.lock {
				if _, err := e.svc.Lock(ctx, Admin(), tt.user, "test", 0); err != nil {
					t.Fatal(err)
				}
			}
			r, err := e.svc.Create(ctx, e.who(t, tt.user), tt.roles, tt.reason, tt.d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrRefused) {
					t.Fatalf("err = %v, want refusal containing %q", err, tt.wantErr)
				}
				if n := e.aud.count(audit.TypeRequestCreate); n != 0 {
					t.Errorf("refused request audited as created %d times", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			got, err := e.store.GetRequest(ctx, r.ID)
			if err != nil {
				t.Fatalf("stored request: %v", err)
			}
			if !idRE.MatchString(got.ID) || got.State != storage.StatePending || got.User != tt.user ||
				got.Duration != tt.wantDur || !slices.Equal(got.Roles, tt.wantRole) ||
				!got.Expires.Equal(t0.Add(24*time.Hour)) || !got.Created.Equal(t0) {
				t.Errorf("stored %+v", got)
			}
			if e.aud.count(audit.TypeRequestCreate) != 1 {
				t.Errorf("want one %s event", audit.TypeRequestCreate)
			}
			if len(e.notes.msgs) != 1 || e.notes.msgs[0].Event != "created" || e.notes.msgs[0].Link != "https://gh.example/requests/"+r.ID {
				t.Errorf("notifications %+v", e.notes.msgs)
			}
		})
	}
}

// step is one action in a state-machine case. op is approve, deny, cancel,
// revoke, lock (actor locks arg) or wait (advance the clock by d).
type step struct {
	actor, op string
	arg       string // the user to lock
	d         time.Duration
	wantErr   string
}

func TestStateMachine(t *testing.T) {
	tests := []struct {
		name      string
		requester string
		roles     []string
		steps     []step
		wantState string
		wantRevs  int
	}{
		{"one approval of two stays pending", "bob", []string{"dba"}, []step{{actor: "alice", op: "approve"}}, storage.StatePending, 1},
		{"two approvals approve", "bob", []string{"dba"}, []step{{actor: "alice", op: "approve"}, {actor: "ivy", op: "approve"}}, storage.StateApproved, 2},
		{"single-approval rule", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}}, storage.StateApproved, 1},
		{"one denial denies", "bob", []string{"dba"}, []step{{actor: "alice", op: "approve"}, {actor: "ivy", op: "deny"}}, storage.StateDenied, 2},
		{"own request", "ivy", []string{"dba"}, []step{{actor: "ivy", op: "approve", wantErr: "you cannot review your own request"}}, storage.StatePending, 0},
		{"no review rule", "bob", []string{"dba"}, []step{{actor: "carol", op: "approve", wantErr: "no request %s that you may review"}}, storage.StatePending, 0},
		{"rule covers only some roles", "bob", []string{"dba", "web"}, []step{{actor: "dave", op: "approve", wantErr: "no request %s that you may review"}}, storage.StatePending, 0},
		{"admin does not review", "bob", []string{"dba"}, []step{{actor: "admin", op: "approve", wantErr: "you may not review request"}}, storage.StatePending, 0},
		{"locked reviewer", "bob", []string{"dba"}, []step{{actor: "admin", op: "lock", arg: "alice"}, {actor: "alice", op: "approve", wantErr: "you are locked"}}, storage.StatePending, 0},
		{"reviewer counts once", "bob", []string{"dba"}, []step{{actor: "alice", op: "approve"}, {actor: "alice", op: "approve", wantErr: "you already reviewed"}}, storage.StatePending, 1},
		{"deny after approve by same", "bob", []string{"dba"}, []step{{actor: "alice", op: "approve"}, {actor: "alice", op: "deny", wantErr: "you already reviewed"}}, storage.StatePending, 1},
		{"review after decision", "bob", []string{"web"}, []step{{actor: "dave", op: "deny"}, {actor: "dave", op: "approve", wantErr: "request %s is already denied"}}, storage.StateDenied, 1},
		{"review after expiry", "bob", []string{"dba"}, []step{{op: "wait", d: 24 * time.Hour}, {actor: "alice", op: "approve", wantErr: "expired before it was reviewed"}}, storage.StateExpired, 0},
		{"cancel", "bob", []string{"dba"}, []step{{actor: "bob", op: "cancel"}}, storage.StateCancelled, 0},
		{"cancel someone else's", "bob", []string{"dba"}, []step{{actor: "carol", op: "cancel", wantErr: "no request %s that you may cancel"}}, storage.StatePending, 0},
		{"reviewer cancels", "bob", []string{"dba"}, []step{{actor: "alice", op: "cancel", wantErr: "only cancel your own"}}, storage.StatePending, 0},
		{"stranger revokes", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {actor: "carol", op: "revoke", wantErr: "no request %s that you may revoke"}}, storage.StateApproved, 1},
		{"cancel approved", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {actor: "bob", op: "cancel", wantErr: "already approved"}}, storage.StateApproved, 1},
		{"cancel after expiry", "bob", []string{"dba"}, []step{{op: "wait", d: 25 * time.Hour}, {actor: "bob", op: "cancel", wantErr: "had already expired"}}, storage.StateExpired, 0},
		{"review cancelled", "bob", []string{"web"}, []step{{actor: "bob", op: "cancel"}, {actor: "dave", op: "approve", wantErr: "already cancelled"}}, storage.StateCancelled, 0},
		{"requester drops grant", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {actor: "bob", op: "revoke"}}, storage.StateRevoked, 1},
		{"lock manager revokes", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {actor: "sam", op: "revoke"}}, storage.StateRevoked, 1},
		{"admin revokes", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {actor: "admin", op: "revoke"}}, storage.StateRevoked, 1},
		{"reviewer may not revoke", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {actor: "dave", op: "revoke", wantErr: "you may not revoke"}}, storage.StateApproved, 1},
		{"revoke pending", "bob", []string{"web"}, []step{{actor: "bob", op: "revoke", wantErr: "is pending, not an active grant"}}, storage.StatePending, 0},
		{"revoke twice", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {actor: "bob", op: "revoke"}, {actor: "bob", op: "revoke", wantErr: "is revoked, not an active grant"}}, storage.StateRevoked, 1},
		{"revoke ended grant", "bob", []string{"web"}, []step{{actor: "dave", op: "approve"}, {op: "wait", d: 2 * time.Hour}, {actor: "sam", op: "revoke", wantErr: "already ended"}}, storage.StateApproved, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			r := e.create(t, tt.requester, tt.roles...)
			for i, s := range tt.steps {
				var err error
				switch s.op {
				case "approve", "deny":
					_, err = e.svc.Review(ctx, e.who(t, s.actor), r.ID, s.op == "approve", "because")
				case "cancel":
					_, err = e.svc.Cancel(ctx, e.who(t, s.actor), r.ID)
				case "revoke":
					_, err = e.svc.Revoke(ctx, e.who(t, s.actor), r.ID, "done")
				case "lock":
					_, err = e.svc.Lock(ctx, e.who(t, s.actor), s.arg, "test", 0)
				case "wait":
					e.clock.Advance(s.d)
				}
				want := strings.ReplaceAll(s.wantErr, "%s", r.ID)
				switch {
				case want == "" && err != nil:
					t.Fatalf("step %d (%s %s): %v", i, s.actor, s.op, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrRefused)):
					t.Fatalf("step %d (%s %s): err = %v, want refusal containing %q", i, s.actor, s.op, err, want)
				}
			}
			got, err := e.store.GetRequest(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.wantState || len(got.Reviews) != tt.wantRevs {
				t.Fatalf("state %s with %d reviews, want %s with %d", got.State, len(got.Reviews), tt.wantState, tt.wantRevs)
			}
			switch got.State {
			case storage.StateApproved:
				if got.GrantStart == nil || got.GrantEnd == nil || got.GrantEnd.Sub(*got.GrantStart) != 2*time.Hour {
					t.Errorf("approved grant window %v..%v, want 2h", got.GrantStart, got.GrantEnd)
				}
				if e.aud.count(audit.TypeRequestApprove) != 1 {
					t.Errorf("want one %s event", audit.TypeRequestApprove)
				}
			case storage.StateRevoked:
				if got.GrantEnd == nil || !got.GrantEnd.Equal(e.clock.Now()) || e.aud.count(audit.TypeRequestRevoke) != 1 {
					t.Errorf("revoked grant ends %v, want now; %d revoke events", got.GrantEnd, e.aud.count(audit.TypeRequestRevoke))
				}
			case storage.StateDenied:
				if e.aud.count(audit.TypeRequestDeny) != 1 || got.GrantStart != nil {
					t.Errorf("denied: %d deny events, grant start %v", e.aud.count(audit.TypeRequestDeny), got.GrantStart)
				}
			case storage.StateExpired:
				if e.aud.count(audit.TypeRequestExpire) != 1 {
					t.Errorf("want one %s event", audit.TypeRequestExpire)
				}
			case storage.StateCancelled:
				if e.aud.count(audit.TypeRequestCancel) != 1 {
					t.Errorf("want one %s event", audit.TypeRequestCancel)
				}
			}
			if n := e.aud.count(audit.TypeRequestReview); n != tt.wantRevs {
				t.Errorf("%d %s events for %d reviews", n, audit.TypeRequestReview, tt.wantRevs)
			}
			if got.State != storage.StatePending {
				want := strings.ToLower(got.State) // notify's event names match the states
				if ev := e.notes.events(); !slices.Contains(ev, want) {
					t.Errorf("notifications %v lack %q", ev, want)
				}
			}
		})
	}
}

func TestReviewUnknownRequest(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.Review(context.Background(), e.who(t, "alice"), "nosuchreqs", true, "")
	if !errors.Is(err, ErrNoSuchRequest) || !errors.Is(err, storage.ErrNotFound) || !errors.Is(err, ErrRefused) || err.Error() != "no request nosuchreqs that you may review" {
		t.Errorf("err = %v, want a not-found refusal", err)
	}
}

// TestConcurrentApprovals has 20 reviewers approve one request at the same
// moment against real SQLite: exactly the first two count, the request is
// approved once, and everyone else is told it is already approved.
func TestConcurrentApprovals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	r := e.create(t, "bob", "dba")
	reviewers := make([]Effective, 20)
	for i := range reviewers {
		reviewers[i] = e.who(t, "rev"+string(rune('a'+i)))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(reviewers))
	for i, rv := range reviewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = e.svc.Review(ctx, rv, r.ID, true, "lgtm")
		}()
	}
	close(start)
	wg.Wait()

	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "already approved"):
			t.Errorf("unexpected error: %v", err)
		}
	}
	got, err := e.store.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 2 || got.State != storage.StateApproved || len(got.Reviews) != 2 || got.Reviews[0].Reviewer == got.Reviews[1].Reviewer {
		t.Fatalf("%d reviews accepted, state %s, reviews %+v; want 2 distinct and APPROVED", ok, got.State, got.Reviews)
	}
	if e.aud.count(audit.TypeRequestReview) != 2 || e.aud.count(audit.TypeRequestApprove) != 1 {
		t.Errorf("audit: %d reviews, %d approvals; want 2 and 1", e.aud.count(audit.TypeRequestReview), e.aud.count(audit.TypeRequestApprove))
	}
	if n := strings.Count(strings.Join(e.notes.events(), " "), "approved"); n != 1 {
		t.Errorf("%d approved notifications, want 1", n)
	}
}

func TestVisibility(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dba := e.create(t, "bob", "dba")
	web := e.create(t, "carol", "web")

	ids := func(rs []storage.Request) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	tests := []struct {
		viewer    string
		list      []string
		queue     []string
		getDBA    bool
		getWebErr bool
	}{
		{viewer: "bob", list: []string{dba.ID}, queue: nil, getDBA: true, getWebErr: true},
		{viewer: "carol", list: []string{web.ID}, queue: nil, getDBA: false, getWebErr: false},
		{viewer: "alice", list: []string{dba.ID}, queue: []string{dba.ID}, getDBA: true, getWebErr: true},
		{viewer: "dave", list: []string{web.ID}, queue: []string{web.ID}, getDBA: false, getWebErr: false},
		{viewer: "sam", list: nil, queue: nil, getDBA: false, getWebErr: true},
		{viewer: "admin", list: sorted(dba.ID, web.ID), queue: nil, getDBA: true, getWebErr: false},
	}
	for _, tt := range tests {
		t.Run(tt.viewer, func(t *testing.T) {
			v := e.who(t, tt.viewer)
			list, err := e.svc.List(ctx, v, storage.RequestFilter{})
			if err != nil || !slices.Equal(ids(list), tt.list) {
				t.Errorf("List = %v, %v; want %v", ids(list), err, tt.list)
			}
			queue, err := e.svc.ReviewQueue(ctx, v)
			if err != nil || !slices.Equal(ids(queue), tt.queue) {
				t.Errorf("ReviewQueue = %v, %v; want %v", ids(queue), err, tt.queue)
			}
			_, err = e.svc.Get(ctx, v, dba.ID)
			if (err == nil) != tt.getDBA {
				t.Errorf("Get(bob's dba request) err = %v, want visible=%v", err, tt.getDBA)
			}
			if err != nil && err.Error() != "no request "+dba.ID+" that you may see" {
				t.Errorf("hidden request answered %q, want a plain not-found", err)
			}
			_, err = e.svc.Get(ctx, v, web.ID)
			if (err != nil) != tt.getWebErr {
				t.Errorf("Get(carol's web request) err = %v", err)
			}
		})
	}

	// Once alice has reviewed, the request leaves her queue but not ivy's.
	e.review(t, "alice", dba.ID, true)
	if q, _ := e.svc.ReviewQueue(ctx, e.who(t, "alice")); len(q) != 0 {
		t.Errorf("alice's queue after reviewing: %v", ids(q))
	}
	if q, _ := e.svc.ReviewQueue(ctx, e.who(t, "ivy")); !slices.Equal(ids(q), []string{dba.ID}) {
		t.Errorf("ivy's queue: %v, want [%s]", ids(q), dba.ID)
	}
	// An expired request is nobody's to review.
	e.clock.Advance(24 * time.Hour)
	if q, _ := e.svc.ReviewQueue(ctx, e.who(t, "ivy")); len(q) != 0 {
		t.Errorf("ivy's queue after expiry: %v", ids(q))
	}
	// The limit counts only what the viewer can see.
	if l, _ := e.svc.List(ctx, e.who(t, "carol"), storage.RequestFilter{Limit: 1}); !slices.Equal(ids(l), []string{web.ID}) {
		t.Errorf("carol's List with limit 1: %v", ids(l))
	}
}

func TestWait(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)

	// Decided in this process.
	r := e.create(t, "bob", "web")
	done := make(chan storage.Request)
	go func() {
		got, err := e.svc.Wait(ctx, r.ID)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	e.review(t, "dave", r.ID, true)
	if got := <-done; got.State != storage.StateApproved {
		t.Errorf("Wait returned %s, want APPROVED", got.State)
	}

	// Decided on another bastion sharing the database: found by polling.
	other := e.newService(openStore(t, e.path))
	r2 := e.create(t, "bob", "web")
	go func() {
		got, err := e.svc.Wait(ctx, r2.ID)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	if _, err := other.Review(ctx, e.who(t, "dave"), r2.ID, false, "no"); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.State != storage.StateDenied {
		t.Errorf("Wait returned %s, want DENIED", got.State)
	}

	// Nobody reviews: Wait itself expires the request.
	r3 := e.create(t, "bob", "web")
	e.clock.Advance(24 * time.Hour)
	got, err := e.svc.Wait(ctx, r3.ID)
	if err != nil || got.State != storage.StateExpired {
		t.Errorf("Wait on an overdue request = %s, %v; want EXPIRED", got.State, err)
	}

	// The caller gives up.
	r4 := e.create(t, "bob", "web")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.svc.Wait(cctx, r4.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
}

// WaitSeeing shows the waiter each reading while pending, so a partial
// approval (which changes no state) reaches the status line it shows.
func TestWaitSeeing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	r := e.create(t, "bob", "dba") // two approvals from security
	seen := make(chan string, 100)
	done := make(chan storage.Request)
	go func() {
		got, err := e.svc.WaitSeeing(ctx, r.ID, func(p storage.Request) {
			select {
			case seen <- e.svc.Explain(p).Status:
			default: // the poll comes again
			}
		})
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	waitSeen := func(want string) {
		t.Helper()
		deadline, last := time.After(10*time.Second), ""
		for {
			select {
			case last = <-seen:
				if last == want {
					return
				}
			case <-deadline:
				t.Fatalf("the waiter never saw %q; last %q", want, last)
			}
		}
	}
	waitSeen("needs 2 more approvals from any reviewer")
	e.review(t, "alice", r.ID, true)
	waitSeen("needs 1 more approval from any reviewer")
	e.review(t, "ivy", r.ID, true)
	if got := <-done; got.State != storage.StateApproved {
		t.Errorf("WaitSeeing returned %s, want APPROVED", got.State)
	}
}

// TestLockEndsGrantsAndRequests: a lock revokes the user's active grants and
// withdraws their pending requests, so unlock gives back only base roles.
func TestLockEndsGrantsAndRequests(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	granted := e.create(t, "bob", "dba")
	e.review(t, "alice", granted.ID, true)
	e.review(t, "ivy", granted.ID, true)
	pending := e.create(t, "bob", "web")
	other := e.create(t, "carol", "web") // someone else's request is untouched

	if _, err := e.svc.Lock(ctx, e.who(t, "sam"), "bob", "investigation", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Unlock(ctx, e.who(t, "sam"), "bob"); err != nil {
		t.Fatal(err)
	}
	if got := e.who(t, "bob").Subject.Roles; !slices.Equal(got, []string{"dev"}) {
		t.Errorf("after lock and unlock bob has %v, want [dev]: the grant must not come back", got)
	}
	for _, c := range []struct {
		id, state string
	}{{granted.ID, storage.StateRevoked}, {pending.ID, storage.StateCancelled}, {other.ID, storage.StatePending}} {
		r, err := e.store.GetRequest(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != c.state {
			t.Errorf("request %s of %s is %s after the lock, want %s", r.ID, r.User, r.State, c.state)
		}
		if c.state != storage.StatePending && (r.StateBy != "sam" || strings.Contains(r.StateReason, "investigation")) {
			t.Errorf("request %s ended by %q with reason %q; want sam, and no lock reason", r.ID, r.StateBy, r.StateReason)
		}
	}
	if n := e.aud.count(audit.TypeRequestRevoke); n != 1 {
		t.Errorf("%d %s events, want 1", n, audit.TypeRequestRevoke)
	}
	if n := e.aud.count(audit.TypeRequestCancel); n != 1 {
		t.Errorf("%d %s events, want 1", n, audit.TypeRequestCancel)
	}
}

// TestNoExistenceOracle: someone with no rights on a request gets, for its
// real id, exactly the answer a made-up id gets, whatever the request's
// state and whatever they try; nothing is changed or audited.
func TestNoExistenceOracle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	pending := e.create(t, "bob", "dba")
	approved := e.create(t, "bob", "web")
	e.review(t, "dave", approved.ID, true)
	cancelled := e.create(t, "bob", "dba")
	if _, err := e.svc.Cancel(ctx, e.who(t, "bob"), cancelled.ID); err != nil {
		t.Fatal(err)
	}
	const madeUp = "zzzzzzzzzzzzzz"
	ops := map[string]func(Effective, string) error{
		"get":     func(v Effective, id string) error { _, err := e.svc.Get(ctx, v, id); return err },
		"approve": func(v Effective, id string) error { _, err := e.svc.Review(ctx, v, id, true, "x"); return err },
		"deny":    func(v Effective, id string) error { _, err := e.svc.Review(ctx, v, id, false, "x"); return err },
		"cancel":  func(v Effective, id string) error { _, err := e.svc.Cancel(ctx, v, id); return err },
		"revoke":  func(v Effective, id string) error { _, err := e.svc.Revoke(ctx, v, id, "x"); return err },
	}
	// carol requests like bob but reviews nothing; dave reviews web only;
	// alice reviews dba only.
	cases := []struct {
		who string
		req storage.Request
		ops []string
	}{
		{"carol", pending, []string{"get", "approve", "deny", "cancel", "revoke"}},
		{"carol", approved, []string{"get", "approve", "deny", "cancel", "revoke"}},
		{"carol", cancelled, []string{"get", "approve", "deny", "cancel", "revoke"}},
		{"dave", pending, []string{"get", "approve", "deny", "cancel", "revoke"}},
		{"alice", approved, []string{"get", "approve", "deny", "cancel", "revoke"}},
	}
	before := e.aud.total()
	for _, tc := range cases {
		for _, op := range tc.ops {
			t.Run(tc.who+" "+op+" "+strings.ToLower(tc.req.State), func(t *testing.T) {
				v := e.who(t, tc.who)
				real, fake := ops[op](v, tc.req.ID), ops[op](v, madeUp)
				if !errors.Is(real, ErrNoSuchRequest) || !errors.Is(fake, ErrNoSuchRequest) {
					t.Fatalf("real id: %v; made-up id: %v; want ErrNoSuchRequest for both", real, fake)
				}
				r := strings.ReplaceAll(real.Error(), tc.req.ID, "ID")
				f := strings.ReplaceAll(fake.Error(), madeUp, "ID")
				if r != f {
					t.Fatalf("real id answers %q, a made-up one %q", r, f)
				}
			})
		}
	}
	if n := e.aud.total(); n != before {
		t.Errorf("%d audit events from refused attempts", n-before)
	}
	for _, r := range []storage.Request{pending, approved, cancelled} {
		got, _ := e.store.GetRequest(ctx, r.ID)
		if len(got.Reviews) > 1 || (r.ID == pending.ID && got.State != storage.StatePending) {
			t.Errorf("request %s changed: %s with %d reviews", r.ID, got.State, len(got.Reviews))
		}
	}
	// The people with rights still get the real answers.
	if _, err := e.svc.Get(ctx, e.who(t, "alice"), pending.ID); err != nil {
		t.Errorf("a reviewer cannot see the request: %v", err)
	}
	if _, err := e.svc.Review(ctx, e.who(t, "bob"), pending.ID, true, ""); err == nil || !strings.Contains(err.Error(), "your own request") {
		t.Errorf("self-approval: %v, want its own refusal", err)
	}
	if _, err := e.svc.Cancel(ctx, e.who(t, "bob"), pending.ID); err != nil {
		t.Errorf("the requester cannot cancel: %v", err)
	}
}
