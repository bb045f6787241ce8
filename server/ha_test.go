package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

const haRoles = `
users:
  - {name: bob, roles: [dev]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
`

// buildOn builds a bastion (without serving) on the PostgreSQL database dsn.
func buildOn(t testing.TB, name, dsn string) *Bastion {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "roles.yaml"), []byte(haRoles), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf("bastion_id: %s\nstorage: {driver: postgres, dsn: %q}\n", name, dsn)
	cfg, err := config.Parse(filepath.Join(dir, "gatehouse.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("build bastion %s: %v", name, err)
	}
	t.Cleanup(func() { b.Close() })
	if b.bus == nil {
		t.Fatalf("bastion %s on postgres has no change bus", name)
	}
	return b
}

// waitChange returns the next change for user, failing after a generous
// deadline (a hang, not a speed limit: speed is what benchmarks measure).
func waitChange(t *testing.T, ch <-chan access.Change, user string) access.Change {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case c := <-ch:
			if c.User == user {
				return c
			}
		case <-deadline:
			t.Fatalf("no access change for %s arrived", user)
			return access.Change{}
		}
	}
}

// TestChangesReachOtherBastion: a lock placed through one bastion reaches
// another bastion on the same database through the notification alone.
// Neither runs access.Service.Run, so no periodic scan can be what
// delivered it.
func TestChangesReachOtherBastion(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	one, two := buildOn(t, "one", dsn), buildOn(t, "two", dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	changes, stop := two.Access.Subscribe()
	defer stop()
	// The first scan only learns the current state.
	if err := two.Access.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); two.followOtherBastions(ctx, two.bus) }()
	admin := access.Admin()
	if _, err := one.Access.Lock(ctx, admin, "bob", "investigation", 0); err != nil {
		t.Fatal(err)
	}
	// The lock's own announcement may go out before two's goroutine has
	// subscribed; an empty note ("re-check") from one makes two scan just
	// the same. Neither can deliver the change without a notification.
	var got access.Change
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case got = <-changes:
			break wait
		case <-tick.C:
			if err := one.bus.Notify(ctx, changesChannel, ""); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("bastion two never heard of bastion one's lock")
		}
	}
	if got.Kind != access.ChangeLocked || got.User != "bob" {
		t.Fatalf("bastion two saw %+v, want bob locked", got)
	}
	if err := one.Access.Unlock(ctx, admin, "bob"); err != nil {
		t.Fatal(err)
	}
	if c := waitChange(t, changes, "bob"); c.Kind != access.ChangeUnlocked {
		t.Fatalf("after the unlock bastion two saw %+v, want bob unlocked", c)
	}
	cancel()
	<-done
}

func TestOwnNote(t *testing.T) {
	b := &Bastion{origin: "abc"}
	tests := []struct {
		payload string
		own     bool
	}{
		{`{"origin":"abc","kind":"user.lock","user":"bob"}`, true},
		{`{"origin":"xyz","kind":"user.lock","user":"bob"}`, false},
		{"", false},             // Listen's "re-check after reconnect"
		{"not json", false},     // from something newer or foreign: scan
		{`{"kind":"x"}`, false}, // no origin
	}
	for _, tt := range tests {
		if got := b.ownNote(tt.payload); got != tt.own {
			t.Errorf("ownNote(%q) = %v, want %v", tt.payload, got, tt.own)
		}
	}
}

// TestDatabaseOutage: while the database is down a new connection is
// refused (Admit fails closed with a clear line) and Authorize reports an
// error rather than a verdict, which the proxy's live-session recheck
// treats as "keep the session"; once it is back, locks are enforced again.
func TestDatabaseOutage(t *testing.T) {
	c := pgtest.StartCluster(t)
	if !c.CanRestart() {
		t.Skip("external PostgreSQL cannot be stopped")
	}
	b := buildOn(t, "one", c.NewDatabase(t))
	ctx := context.Background()
	az := b.Authorizer()
	bob := proxy.Identity{User: "bob"}
	node := config.Node{Name: "web-1", Labels: map[string]string{"env": "staging"}}
	check := func(when string, admitErr string, allowed bool, authErr bool) {
		t.Helper()
		err := az.Admit(ctx, bob)
		if (err == nil) != (admitErr == "") || (err != nil && !strings.Contains(err.Error(), admitErr)) {
			t.Errorf("%s: Admit = %v, want error containing %q", when, err, admitErr)
		}
		v, err := az.Authorize(ctx, bob, "ubuntu", node)
		if (err != nil) != authErr || (err == nil && v.Allowed != allowed) {
			t.Errorf("%s: Authorize = %+v, %v; want allowed %v, error %v", when, v, err, allowed, authErr)
		}
	}
	check("database up", "", true, false)
	c.Stop(t)
	check("database down", "access could not be checked right now", false, true)
	c.Restart(t)
	// The pool reconnects by itself; poll until it has.
	for i := 0; ; i++ {
		if err := b.Access.Scan(ctx); err == nil {
			break
		} else if i == 300 {
			t.Fatalf("store never came back after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	check("database back", "", true, false)
	if _, err := b.Access.Lock(ctx, access.Admin(), "bob", "investigation", 0); err != nil {
		t.Fatal(err)
	}
	check("locked", "bob is locked", false, false)
}

// Notes about live sessions go to the bastion they name and never cause a
// scan; a Locate is answered by the located note addressed to it, and
// gives up with ErrNoAnswer when the holding bastion is silent.
func TestRemoteSessionNotes(t *testing.T) {
	dsn := pgtest.StartCluster(t).NewDatabase(t)
	two := buildOn(t, "two", dsn)
	r := two.Remote()
	if r == nil {
		t.Fatal("a bastion on postgres has no way to other bastions' sessions")
	}
	ctx := context.Background()
	for _, kind := range []string{noteTerminate, noteLocate} {
		if two.takeNote(ctx, fmt.Sprintf(`{"origin":"other","kind":%q,"session":"s-12345678","bastion":"one"}`, kind)) {
			t.Errorf("a %s note made bastion two scan the store", kind)
		}
	}
	if !two.takeNote(ctx, `{"origin":"other","kind":"user.lock","user":"bob"}`) {
		t.Error("a lock made elsewhere did not make bastion two scan")
	}

	s := storage.Session{ID: "s-12345678", Bastion: "one", Status: "live"}
	got := make(chan string, 1)
	go func() {
		url, err := r.Locate(ctx, s)
		if err != nil {
			t.Errorf("Locate: %v", err)
		}
		got <- url
	}()
	// The answer for someone else is ignored; the one for bastion two is
	// delivered (sent until Locate has registered and taken it).
	two.takeNote(ctx, `{"origin":"one","kind":"session.located","session":"s-12345678","url":"https://elsewhere","to":"someone-else"}`)
	answer := fmt.Sprintf(`{"origin":"one","kind":"session.located","session":"s-12345678","url":"https://one.example","to":%q}`, two.origin)
	var url string
	for url == "" {
		two.takeNote(ctx, answer)
		select {
		case url = <-got:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if url != "https://one.example" {
		t.Fatalf("Locate returned %q", url)
	}
	if _, err := r.Locate(ctx, storage.Session{ID: "s-87654321", Bastion: "gone", Status: "live"}); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("Locate of a session nobody holds: want ErrNoAnswer, got %v", err)
	}
}
