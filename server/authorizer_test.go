package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// countingStore counts how often a user's lock is read: once per reading
// of the user's standing.
type countingStore struct {
	storage.Store
	lockReads atomic.Int32
}

func (c *countingStore) ActiveLock(ctx context.Context, user string, now time.Time) (storage.Lock, error) {
	c.lockReads.Add(1)
	return c.Store.ActiveLock(ctx, user, now)
}

type authorizerEnv struct {
	b     *Bastion
	store *countingStore
	svc   *access.Service
	az    *authorizer
	roles string
	clock atomic.Pointer[time.Time]
}

// newAuthorizerEnv builds a bastion on SQLite (without serving) and an
// authorizer over a counting store, with a clock the test moves.
func newAuthorizerEnv(t testing.TB) *authorizerEnv {
	t.Helper()
	dir := t.TempDir()
	env := &authorizerEnv{roles: filepath.Join(dir, "roles.yaml")}
	if err := os.WriteFile(env.roles, []byte(haRoles), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf("data_dir: %s\nroles_file: %s\n", filepath.Join(dir, "data"), env.roles)
	cfg, err := config.Parse(filepath.Join(dir, "gatehouse.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("build bastion: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	now := time.Now()
	env.clock.Store(&now)
	clock := func() time.Time { return *env.clock.Load() }
	env.b, env.store = b, &countingStore{Store: b.Store}
	env.svc = access.New(env.store, b.Policy, b.Audit, nil, access.Options{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	env.az = &authorizer{access: env.svc, now: clock}
	return env
}

func (e *authorizerEnv) advance(d time.Duration) {
	now := e.clock.Load().Add(d)
	e.clock.Store(&now)
}

var (
	authzBob  = proxy.Identity{User: "bob"}
	authzNode = config.Node{Name: "web-1", Labels: map[string]string{"env": "staging"}}
)

// The adapter hands the proxy access.Authorize's answer: a refusal of a
// locked user carries the one line the user sees, and every decision reads
// the user's standing afresh.
func TestAuthorizerPassesTheDecision(t *testing.T) {
	env := newAuthorizerEnv(t)
	ctx := context.Background()
	v, err := env.az.Authorize(ctx, authzBob, "ubuntu", authzNode)
	if err != nil || !v.Allowed || len(v.Roles) != 1 || v.Roles[0] != "dev" || !v.PortForwarding {
		t.Fatalf("Authorize = %+v, %v; want allowed by role dev with port forwarding", v, err)
	}
	if v, _ := env.az.Authorize(ctx, authzBob, "root", authzNode); v.Allowed || v.Notice != "" {
		t.Errorf("root: %+v, want a policy refusal", v)
	}
	if n := env.store.lockReads.Load(); n != 2 {
		t.Errorf("%d readings of bob's standing for two decisions, want 2", n)
	}
	exp := env.clock.Load().Add(time.Hour)
	if err := env.b.Store.PutLock(ctx, storage.Lock{User: "bob", Reason: "investigation", By: "admin", Created: *env.clock.Load(), Expires: &exp}); err != nil {
		t.Fatal(err)
	}
	v, err = env.az.Authorize(ctx, authzBob, "ubuntu", authzNode)
	want := "bob is locked until " + exp.Local().Format("2006-01-02 15:04 MST") + "; contact your security team"
	if err != nil || v.Allowed || v.Rule != access.RuleLock || access.RuleLock != proxy.RuleLock || v.Notice != want || v.Reason != "bob is locked" {
		t.Errorf("locked: %+v, %v; want rule lock, notice %q", v, err, want)
	}
	if err := env.az.Admit(ctx, authzBob); err == nil || err.Error() != want {
		t.Errorf("Admit of locked bob = %v, want %q", err, want)
	}
	if na, err := env.az.Nodes(ctx, authzBob, []config.Node{authzNode}); err != nil || len(na) != 0 {
		t.Errorf("Nodes of locked bob = %+v, %v; want none", na, err)
	}
}

// A review on someone's behalf sees the claims of their latest login: the
// bastion hands package access the same claims policy check reads.
func TestLatestClaimsFeedReviewsOnBehalf(t *testing.T) {
	env := newAuthorizerEnv(t)
	ctx := context.Background()
	src := latestClaims{env.b.Store}
	if c, err := src.LatestClaims(ctx, "alice"); err != nil || c != nil {
		t.Fatalf("claims of a user who never logged in = %v, %v; want none", c, err)
	}
	now := time.Now()
	for _, l := range []storage.Login{
		{ID: "a1", User: "alice", Kind: "web", Claims: map[string][]string{"groups": {"old"}}, Created: now.Add(-time.Hour), Expires: now},
		{ID: "a2", User: "alice", Kind: "cli", Claims: map[string][]string{"groups": {"security"}}, Created: now, Expires: now.Add(time.Hour)},
	} {
		if err := env.b.Store.PutLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := src.LatestClaims(ctx, "alice"); err != nil || len(c["groups"]) != 1 || c["groups"][0] != "security" {
		t.Errorf("LatestClaims(alice) = %v, %v; want the latest login's groups", c, err)
	}
}
