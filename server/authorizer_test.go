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
func newAuthorizerEnv(t *testing.T) *authorizerEnv {
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
	env.az = &authorizer{policy: b.Policy, access: env.svc, now: clock}
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

// A jump's admission decides its login from the one reading Admit made.
func TestAdmissionReadsTheUserOnce(t *testing.T) {
	env := newAuthorizerEnv(t)
	ctx := context.Background()
	adm, err := env.az.AdmitJump(ctx, authzBob)
	if err != nil {
		t.Fatalf("AdmitJump: %v", err)
	}
	v, err := adm.Authorize(ctx, "ubuntu", authzNode)
	if err != nil || !v.Allowed || len(v.Roles) != 1 || v.Roles[0] != "dev" {
		t.Fatalf("Authorize = %+v, %v; want allowed by role dev", v, err)
	}
	if v, _ := adm.Authorize(ctx, "root", authzNode); v.Allowed {
		t.Errorf("root allowed: %+v", v)
	}
	if n := env.store.lockReads.Load(); n != 1 {
		t.Errorf("%d readings of bob's standing for one jump, want 1", n)
	}
}

// Whatever may have changed the user's standing since the admission makes
// its Authorize read again, and decide from what it reads.
func TestAdmissionReadsAgainAfterChanges(t *testing.T) {
	tests := []struct {
		name        string
		change      func(t *testing.T, env *authorizerEnv)
		wantAllowed bool
		wantRule    string
	}{
		{"lock placed in this process", func(t *testing.T, env *authorizerEnv) {
			if _, err := env.svc.Lock(context.Background(), access.Admin(), "bob", "investigation", 0); err != nil {
				t.Fatal(err)
			}
		}, false, "lock"},
		{"lock placed by another process and scanned", func(t *testing.T, env *authorizerEnv) {
			l := storage.Lock{User: "bob", Reason: "investigation", By: "admin", Created: *env.clock.Load()}
			if err := env.b.Store.PutLock(context.Background(), l); err != nil {
				t.Fatal(err)
			}
			if err := env.svc.Scan(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, false, "lock"},
		{"policy reloaded without the user", func(t *testing.T, env *authorizerEnv) {
			roles := "users: []\nroles:\n  - name: dev\n    allow:\n      logins: [ubuntu]\n      node_labels: {env: staging}\n"
			if err := os.WriteFile(env.roles, []byte(roles), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := env.b.Policy.Reload(); err != nil {
				t.Fatal(err)
			}
		}, false, ""},
		{"admission too old", func(t *testing.T, env *authorizerEnv) {
			env.advance(admissionReuse + time.Millisecond)
		}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newAuthorizerEnv(t)
			ctx := context.Background()
			adm, err := env.az.AdmitJump(ctx, authzBob)
			if err != nil {
				t.Fatalf("AdmitJump: %v", err)
			}
			// Prime the scan's memory of locks, as a running bastion's is.
			if err := env.svc.Scan(ctx); err != nil {
				t.Fatal(err)
			}
			tc.change(t, env)
			before := env.store.lockReads.Load()
			v, err := adm.Authorize(ctx, "ubuntu", authzNode)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if v.Allowed != tc.wantAllowed || (tc.wantRule != "" && v.Rule != tc.wantRule) {
				t.Errorf("Authorize = %+v; want allowed %v, rule %q", v, tc.wantAllowed, tc.wantRule)
			}
			if env.store.lockReads.Load() == before {
				t.Errorf("Authorize decided from the admission's reading")
			}
		})
	}
}

func TestExpiredSince(t *testing.T) {
	now := time.Unix(1700000000, 0)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name   string
		grants []storage.Request
		want   bool
	}{
		{"no grants", nil, false},
		{"grant running", []storage.Request{{GrantEnd: at(time.Minute)}}, false},
		{"grant ending now", []storage.Request{{GrantEnd: at(0)}}, true},
		{"one of two ended", []storage.Request{{GrantEnd: at(time.Hour)}, {GrantEnd: at(-time.Second)}}, true},
	}
	for _, tc := range tests {
		if got := expiredSince(effective{Grants: tc.grants}, now); got != tc.want {
			t.Errorf("%s: expiredSince = %v, want %v", tc.name, got, tc.want)
		}
	}
}
