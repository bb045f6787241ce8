package e2e_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// TestLabelSelectorRequest: bob asks over SSH for postgres on every node
// labelled team=data (db-1; web-1 is team=web), alice approves from her own
// connection, and bob reaches db-1 as postgres and is refused on web-1. A
// selector that matches no node is refused in one line; the selector shows
// in `requests ID`, whoami, the reviewers' Slack message and the audit log.
func TestLabelSelectorRequest(t *testing.T) {
	e2e.RequireAccount(t, "postgres")
	env := startAccess(t, nil)
	bob, alice := env.user(t, "bob"), env.user(t, "alice")

	r := bob.Bastion("request", "--labels", "team=nowhere", "--login", "postgres", "--reason", "INC-22")
	if line := refusalLine(t, r); r.ExitCode == 0 || !strings.Contains(line, "no role you may request allows login postgres on every node labelled team=nowhere, or no node is labelled so") {
		t.Fatalf("selector matching no node: %s", r)
	}
	if r := bob.Bastion("request", "--labels", "team=data", "--node", "db-1", "--login", "postgres", "--reason", "INC-22"); r.ExitCode != 2 {
		t.Fatalf("--node with --labels: want the usage and exit 2, got %s", r)
	}
	// The CLI sends the selector through the API to the same check: web-1
	// (env: staging) is no dba node.
	r = env.cli(t, bob, "create", "--labels", "env=staging", "--login", "root", "--reason", "INC-22")
	if line := refusalLine(t, r); r.ExitCode == 0 || !strings.Contains(line, "no role you may request allows login root on every node labelled env=staging") {
		t.Fatalf("CLI request for env=staging: %s", r)
	}

	r = bob.Bastion("request", "--labels", "team=data", "--login", "postgres", "--reason", "INC-22 vacuum", "--duration", "10m")
	id := requestID(t, r)
	if !strings.Contains(r.Stdout, "request for login postgres on nodes labelled team=data (role dba) is PENDING") {
		t.Fatalf("create: %s", r)
	}
	env.slack.waitSlack(t, regexp.MustCompile(`bob requests login postgres on nodes labelled team=data \(role dba\).*`+id))
	refusedJump(t, bob, "postgres@db-1")

	if r := alice.Bastion("approve", id, "--reason", "go ahead"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "now APPROVED") {
		t.Fatalf("alice approves %s: %s", id, r)
	}
	if show := bob.Bastion("requests", id); !strings.Contains(show.Stdout, "resource: login postgres on nodes labelled team=data\n") {
		t.Fatalf("requests %s:\n%s", id, show)
	}
	allowedJump(t, bob, "postgres@db-1", "postgres")
	if line := refusedJump(t, bob, "postgres@web-1"); !strings.Contains(line, "postgres") || !strings.Contains(line, "web-1") {
		t.Errorf("postgres on web-1 refusal: %q", line)
	}
	refusedJump(t, bob, "root@db-1")
	if who := bob.Bastion("whoami"); !strings.Contains(who.Stdout, "grant: login postgres on nodes labelled team=data (role dba) via request "+id) {
		t.Errorf("whoami does not show the label grant:\n%s", who)
	}
	if out := env.gh.MustRun("audit", "ls", "--type", "request.create", "--json").Stdout; !strings.Contains(out, `"labels":{"team":"data"}`) {
		t.Errorf("the audit event of the request lacks its labels:\n%s", out)
	}
}
