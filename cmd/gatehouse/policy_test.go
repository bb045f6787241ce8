package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// policyConfig is a bastion whose dba role comes only from the groups
// claim, with one data node.
func policyConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	roles := filepath.Join(dir, "roles.yaml")
	body := `claims_to_roles:
  - {claim: groups, value: dbas, roles: [dba]}
users:
  - {name: bob, roles: [dev]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba]}
  - name: dba
    allow:
      logins: [postgres]
      node_labels: {team: data}
`
	if err := os.WriteFile(roles, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gatehouse.yaml")
	yaml := "data_dir: " + filepath.Join(dir, "data") + "\nstorage:\n  driver: sqlite\nroles_file: " + roles +
		"\nnodes:\n  - {name: db-1, address: \"127.0.0.1:1\", labels: {team: data}, host_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb1EHf4bwFVsrXd3jG9eUp2Gl9ZJQq5ONqHgo6O5m2P\"}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPolicyCheckUsesTheStoredClaims: without --claim, policy check
// answers from the claims of the user's latest login, as the bastion
// would, and says so; --claim and --roles ask hypothetical questions.
func TestPolicyCheckUsesTheStoredClaims(t *testing.T) {
	cfg := policyConfig(t)
	check := func(extra ...string) (int, string, string) {
		return runCLI(append([]string{"policy", "check", "--config", cfg, "--user", "bob", "--login", "postgres", "--node", "db-1"}, extra...)...)
	}
	code, out, _ := check()
	if code != 1 || !strings.Contains(out, "denied: bob may not log in as postgres on db-1") ||
		!strings.Contains(out, "claims: none (no login of bob is stored)") || !strings.Contains(out, "hint: request one with: ssh bastion request dba") {
		t.Errorf("before any login: exit %d\n%s", code, out)
	}
	// What a request would need, between the verdict and what it used.
	if i, j := strings.Index(out, "\nmay request dba: no role reviews it, so it cannot be approved; at most 1h; allows this login (whole role, or request --node db-1 --login postgres)\n"),
		strings.Index(out, "\nused:\n"); i < 0 || j < i {
		t.Errorf("before any login: want the may request line before used:\n%s", out)
	}

	ctx := context.Background()
	b, err := openBastion(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, l := range []storage.Login{
		{ID: "older", User: "bob", Kind: "web", Claims: map[string][]string{"groups": {"dev"}}, Created: now.Add(-time.Hour), Expires: now.Add(time.Hour)},
		{ID: "latest", User: "bob", Kind: "cli", Claims: map[string][]string{"groups": {"dev", "dbas"}}, Created: now, Expires: now.Add(time.Hour)},
	} {
		if err := b.Store.PutLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()

	code, out, _ = check()
	for _, want := range []string{"allowed: bob may log in as postgres on db-1", "roles: dba,dev",
		"used:\n  claims: from login latest (cli) at ", ": groups=dev,dbas\n", "grants: none active", "lock: none"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("with the stored claims: exit %d, want 0 and %q in\n%s", code, want, out)
		}
	}
	if strings.Contains(out, "may request") {
		t.Errorf("an allowed login lists what requests would need:\n%s", out)
	}

	code, out, _ = check("--claim", "groups=dev", "--claim", "email=bob@example.com")
	if code != 1 || !strings.Contains(out, "claims: given with --claim email=bob@example.com groups=dev") {
		t.Errorf("with hypothetical claims: exit %d\n%s", code, out)
	}
	code, out, _ = check("--claim", "groups=dev", "--roles", "dba")
	if code != 0 || !strings.Contains(out, "roles: dba\n") || !strings.Contains(out, "roles: given with --roles") {
		t.Errorf("with hypothetical roles: exit %d\n%s", code, out)
	}

	for _, bad := range [][]string{{"--claim", "groups"}, {"--roles", "dba,"}, {"--roles", "nosuch"}} {
		if code, _, errOut := check(bad...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a line", bad, code, errOut)
		}
	}
}

// A one-login grant is shown as the login on the node it allows, not as
// the role it borrows, and says when it is bound to one session.
func TestPolicyCheckShowsOneLoginGrants(t *testing.T) {
	cfg := policyConfig(t)
	ctx := context.Background()
	b, err := openBastion(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	start, end := now.Add(-time.Minute), now.Add(time.Hour)
	for _, r := range []storage.Request{
		{ID: "onelogin", Node: "db-1", Login: "postgres", ForSession: true},
		{ID: "bound", Node: "db-1", Login: "postgres", ForSession: true, Session: "sess-1"},
		{ID: "wholerole"},
	} {
		r.User, r.Roles, r.Reason, r.Duration, r.State = "bob", []string{"dba"}, "INC-1", time.Hour, storage.StateApproved
		r.Created, r.Expires, r.Updated, r.GrantStart, r.GrantEnd = start, end, start, &start, &end
		if err := b.Store.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	code, out, errOut := runCLI("policy", "check", "--config", cfg, "--user", "bob", "--login", "postgres", "--node", "db-1")
	until := " until " + end.Local().Format(time.RFC3339) + ")"
	for _, want := range []string{
		"onelogin (login postgres on db-1 (role dba) for one session, no session has used it yet" + until,
		"bound (login postgres on db-1 (role dba) for one session, bound to session sess-1" + until,
		"wholerole (dba" + until,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q under used: grants; exit %d\n%s%s", want, code, out, errOut)
		}
	}
}
