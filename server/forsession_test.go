package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// forSessionRoles: bob may request dba only for one session; alice
// reviews it alone.
const forSessionRoles = `
users:
  - {name: bob, roles: [dev]}
  - {name: alice, roles: [lead]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba], for_session_required: true}
  - name: dba
    allow:
      logins: [root]
      node_labels: {team: data}
  - name: lead
    allow:
      review_requests: {roles: [dba]}
`

// A request filed on a refused connection for a role the policy grants for
// one session only asks for that; the session that then starts on it binds
// the grant, a second one is refused with one line, and the grant ends
// with the first.
func TestRefusedConnectionRequestIsForTheSession(t *testing.T) {
	env := newAuthorizerEnv(t)
	ctx := context.Background()
	if err := os.WriteFile(env.roles, []byte(forSessionRoles), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := env.b.Policy.Reload(); err != nil {
		t.Fatal(err)
	}
	db := config.Node{Name: "db-1", Labels: map[string]string{"team": "data"}}
	opts, err := env.az.RequestOptions(ctx, authzBob, "root", db)
	if err != nil || len(opts) != 1 || opts[0].Role != "dba" {
		t.Fatalf("RequestOptions = %+v, %v; want dba", opts, err)
	}
	filed, err := env.az.FileRequest(ctx, authzBob, "dba", "INC-42", 0)
	if err != nil {
		t.Fatalf("FileRequest: %v", err)
	}
	if r, err := env.b.Store.GetRequest(ctx, filed.ID); err != nil || !r.ForSession {
		t.Fatalf("filed request %+v, %v; want for one session", r, err)
	}
	alice, err := env.svc.Effective(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Review(ctx, alice, filed.ID, true, "ok"); err != nil {
		t.Fatalf("approve: %v", err)
	}
	v, err := env.az.Authorize(ctx, authzBob, "root", db)
	if err != nil || !v.Allowed || len(v.RequestIDs) != 1 || v.RequestIDs[0] != filed.ID {
		t.Fatalf("Authorize after approval = %+v, %v; want allowed on request %s", v, err, filed.ID)
	}

	sessions := sessionBinder{SessionStore: env.b.Store, access: env.svc, log: slog.New(slog.DiscardHandler)}
	start := *env.clock.Load()
	rec := func(id string) storage.Session {
		return storage.Session{ID: id, User: "bob", Login: "root", Node: "db-1", Kind: "shell", Roles: v.Roles,
			RequestIDs: v.RequestIDs, Start: start, Status: "live"}
	}
	if err := sessions.CreateSession(ctx, rec("s-1")); err != nil {
		t.Fatalf("first session: %v", err)
	}
	err = sessions.CreateSession(ctx, rec("s-2"))
	var ue *proxy.UserError
	want := "gatehouse: grant " + filed.ID + " was for one session, and another session has used it; session refused"
	if !errors.As(err, &ue) || ue.Line != want {
		t.Fatalf("second session: %v; want the line %q", err, want)
	}
	if _, err := env.b.Store.GetSession(ctx, "s-2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the refused session was indexed: %v", err)
	}
	if err := sessions.EndSession(ctx, "s-1", *env.clock.Load(), "closed", nil, 0, 0); err != nil {
		t.Fatalf("end session: %v", err)
	}
	if v, err := env.az.Authorize(ctx, authzBob, "root", db); err != nil || v.Allowed {
		t.Fatalf("Authorize after the session ended = %+v, %v; want refused", v, err)
	}
}
