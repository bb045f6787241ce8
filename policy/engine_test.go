package policy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const engineV1 = `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
users:
  - {name: bob, roles: [dev]}
`

const engineV2 = `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
  - name: dba
    allow:
      logins: [root]
      node_labels: {team: data}
users:
  - {name: bob, roles: [dev, dba]}
`

const engineBad = `roles:
  - name: dev
    alow:
      logins: [ubuntu]
`

// replaceFile writes data the way many editors do: to a new file that is
// renamed over the old one, so the watched path gets a new inode.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestEngineReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roles.yaml")
	if _, err := NewEngine(path, quietLogger()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewEngine(missing) = %v, want not-exist error", err)
	}
	if err := os.WriteFile(path, []byte(engineBad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(path, quietLogger()); err == nil || !strings.Contains(err.Error(), path+":3:") {
		t.Fatalf("NewEngine(bad) = %v, want error naming %s:3", err, path)
	}

	replaceFile(t, path, engineV1)
	e, err := NewEngine(path, quietLogger())
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	if got := e.Current().RoleNames(); !slices.Equal(got, []string{"dev"}) {
		t.Fatalf("roles = %v", got)
	}

	var changes [][2]*Policy
	unsubscribe := e.Subscribe(func(old, new *Policy) { changes = append(changes, [2]*Policy{old, new}) })

	first := e.Current()
	replaceFile(t, path, engineV2)
	if err := e.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	second := e.Current()
	if !slices.Equal(second.RoleNames(), []string{"dba", "dev"}) {
		t.Fatalf("after reload roles = %v", second.RoleNames())
	}
	if len(changes) != 1 || changes[0][0] != first || changes[0][1] != second {
		t.Fatalf("onChange calls = %v, want one (v1 -> v2)", changes)
	}

	// A broken file is reported with file and line and the last good
	// policy stays in force.
	replaceFile(t, path, engineBad)
	err = e.Reload()
	var pe *Error
	if err == nil || !errors.As(err, &pe) || pe.Line != 3 || !strings.Contains(err.Error(), path+":3:") {
		t.Fatalf("Reload(bad) = %v, want *Error at %s:3", err, path)
	}
	if e.Current() != second {
		t.Fatal("bad reload replaced the policy")
	}
	if len(changes) != 1 {
		t.Fatalf("bad reload notified listeners")
	}

	// A vanished file keeps the policy too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(); err == nil || e.Current() != second {
		t.Fatalf("Reload(missing) = %v, policy replaced: %v", err, e.Current() != second)
	}

	// An explicit reload of unchanged content still notifies.
	replaceFile(t, path, engineV2)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 {
		t.Fatalf("onChange calls = %d, want 2", len(changes))
	}
	unsubscribe()
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 {
		t.Fatal("listener called after unsubscribe")
	}
}

func TestEngineWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roles.yaml")
	if err := os.WriteFile(path, []byte(engineV1), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(path, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	e.PollInterval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan [2]*Policy, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Watch(ctx, func(old, new *Policy) { changed <- [2]*Policy{old, new} })
	}()
	defer func() { cancel(); <-done }()

	wait := func(what string) [2]*Policy {
		t.Helper()
		select {
		case c := <-changed:
			return c
		case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("Watch did not report %s", what)
			return [2]*Policy{}
		}
	}

	v1 := e.Current()
	replaceFile(t, path, engineV2)
	c := wait("the rename-over edit")
	if c[0] != v1 || c[1] != e.Current() || !c[1].HasRole("dba") {
		t.Fatalf("change = %v -> %v, current %v", c[0], c[1], e.Current())
	}
	v2 := e.Current()

	// A broken save is not applied; fixing it in place (same inode) is.
	if err := os.WriteFile(path, []byte(engineBad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(engineV1), 0o600); err != nil {
		t.Fatal(err)
	}
	c = wait("the in-place edit")
	if c[1].HasRole("dba") || e.Current() == v2 {
		t.Fatalf("in-place edit not applied: roles %v", e.Current().RoleNames())
	}
	// Reload (SIGHUP) notifies Watch's callback as well.
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	wait("the explicit reload")
}
