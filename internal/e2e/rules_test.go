package e2e_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// rulesE2ERoles: the product's AND-rule. security reviews dba and web, and
// a request needs one approval from a dba-lead and one from a manager. lee
// is a dba-lead, mia a manager, bo both. bob may request dba and web;
// carol may request dba for one session only.
const rulesE2ERoles = `
users:
  - {name: bob, roles: [dev]}
  - {name: carol, roles: [strict]}
  - {name: lee, roles: [security, dba-lead]}
  - {name: mia, roles: [security, manager]}
  - {name: bo, roles: [security, dba-lead, manager]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba, web], max_duration: 1h, reason_required: true}
  - name: strict
    allow:
      request: {roles: [dba], max_duration: 1h, for_session_required: true}
  - name: dba
    allow:
      logins: [postgres, root]
      node_labels: {team: data}
  - name: web
    allow:
      logins: [root]
      node_labels: {team: web}
  - name: security
    allow:
      review_requests:
        roles: [dba, web]
        approvals: [{roles: [dba-lead], count: 1}, {roles: [manager], count: 1}]
  - {name: dba-lead}
  - {name: manager}
`

// approvalLine is the "approval: ..." line of a command's output.
func approvalLine(t *testing.T, r e2e.Result) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^approval: (.*?)\r?$`).FindStringSubmatch(r.Stdout)
	if r.ExitCode != 0 || m == nil {
		t.Fatalf("want exit 0 and an approval: line, got %s", r)
	}
	return m[1]
}

// TestApprovalRules: an AND-rule over SSH and the CLI. A reviewer in both
// groups counts once; the request says what it still needs at every step;
// a reviewer may approve some of the requested roles and the grant holds
// only those.
func TestApprovalRules(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccessRoles(t, rulesE2ERoles, nil)
	bob, lee, mia, bo := env.user(t, "bob"), env.user(t, "lee"), env.user(t, "mia"), env.user(t, "bo")

	// The operator's view of what bob would need.
	pc := env.gh.Run("policy", "check", "--user", "bob", "--login", "root", "--node", "db-1")
	if pc.ExitCode != 1 || !strings.Contains(pc.Stdout, "may request dba: 1 approval from dba-lead and 1 approval from manager; 1 denial denies; at most 1h; allows this login (whole role, or request --node db-1 --login root)\n") ||
		!strings.Contains(pc.Stdout, "may request web: 1 approval from dba-lead and 1 approval from manager; 1 denial denies; at most 1h\n") {
		t.Fatalf("policy check: %s", pc)
	}
	if pc := env.gh.Run("policy", "check", "--user", "carol", "--login", "root", "--node", "db-1"); !strings.Contains(pc.Stdout, "; for one session only (--for-session);") {
		t.Fatalf("policy check for carol: %s", pc)
	}

	r := bob.Bastion("request", "dba", "--reason", "INC-9 replica lag", "--duration", "10m")
	id := requestID(t, r)
	if got := approvalLine(t, r); got != "needs 1 more approval from dba-lead and 1 more approval from manager" {
		t.Fatalf("new request: approval %q", got)
	}
	// bo holds both roles: one approval, counted in one group.
	r = env.cli(t, bo, "approve", id, "--reason", "ok")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "now PENDING") {
		t.Fatalf("bo approves: %s", r)
	}
	show := bob.Bastion("requests", id)
	if got := approvalLine(t, show); got != "needs 1 more approval from manager" {
		t.Fatalf("after bo: approval %q\n%s", got, show)
	}
	if !strings.Contains(show.Stdout, "rule: 1 approval from dba-lead and 1 approval from manager; 1 denial denies") {
		t.Fatalf("requests %s does not state the rule:\n%s", id, show)
	}
	if got := approvalLine(t, env.cli(t, bob, "show", id)); got != "needs 1 more approval from manager" {
		t.Fatalf("CLI show: approval %q", got)
	}
	refusedJump(t, bob, "root@db-1")
	// lee can only fill the dba-lead place, so bo moves to manager.
	env.approve(t, lee, id, "APPROVED")
	if got := approvalLine(t, bob.Bastion("requests", id)); got != "rule met: 1 from dba-lead (lee), 1 from manager (bo)" {
		t.Fatalf("approved: approval %q", got)
	}
	allowedJump(t, bob, "root@db-1", "root")

	// Subset: lee approves only dba (over SSH), mia everything (CLI).
	id2 := env.request(t, bob, "dba,web", "INC-10 deploy", "10m")
	r = lee.Bastion("approve", id2, "--roles", "dba", "--reason", "db only")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "approved dba of request "+id2) ||
		!strings.Contains(r.Stdout, "approval: dba: needs 1 more approval from manager; web: needs 1 more approval from dba-lead and 1 more approval from manager") {
		t.Fatalf("lee approves dba of %s: %s", id2, r)
	}
	env.approve(t, mia, id2, "APPROVED")
	show = bob.Bastion("requests", id2)
	if !strings.Contains(show.Stdout, "roles: dba\n") || !strings.Contains(show.Stdout, "requested: dba,web\n") ||
		!strings.Contains(show.Stdout, "review: lee approved dba ") {
		t.Fatalf("subset grant: want roles dba of requested dba,web, got\n%s", show)
	}
	refusedJump(t, bob, "root@web-1")

	// The same from the CLI: mia approves only web, lee everything (SSH);
	// the grant holds web alone.
	id4 := env.request(t, bob, "dba,web", "INC-10b web deploy", "10m")
	r = env.cli(t, mia, "approve", id4, "--roles", "web", "--reason", "web only")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "approved web of request "+id4) || !strings.Contains(r.Stdout, "now PENDING") {
		t.Fatalf("mia approves web of %s from the CLI: %s", id4, r)
	}
	if r = lee.Bastion("approve", id4, "--reason", "ok"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "now APPROVED") {
		t.Fatalf("lee approves %s: %s", id4, r)
	}
	show = bob.Bastion("requests", id4)
	if !strings.Contains(show.Stdout, "roles: web\n") || !strings.Contains(show.Stdout, "requested: dba,web\n") ||
		!strings.Contains(show.Stdout, "review: mia approved web ") {
		t.Fatalf("CLI subset grant: want roles web of requested dba,web, got\n%s", show)
	}
	allowedJump(t, bob, "root@web-1", "root")

	// An approval that cannot count in any group is refused, one line.
	carol := env.user(t, "carol")
	id3 := requestID(t, carol.Bastion("request", "dba", "--reason", "x", "--for-session"))
	r = env.cli(t, bob, "approve", id3)
	if r.ExitCode == 0 {
		t.Fatalf("bob (no review rule) approved %s: %s", id3, r)
	}
}

// TestResourceRequest: a request for one login on one node, from the CLI;
// the grant allows that login there and nothing else.
func TestResourceRequest(t *testing.T) {
	e2e.RequireAccount(t, "root")
	e2e.RequireAccount(t, "postgres")
	env := startAccessRoles(t, rulesE2ERoles, nil)
	bob, lee, mia := env.user(t, "bob"), env.user(t, "lee"), env.user(t, "mia")

	// The refusal names the request for this login alone.
	if line := refusedJump(t, bob, "postgres@db-1"); !strings.HasSuffix(line, ", or this login only with: ssh bastion request --node db-1 --login postgres --reason ...") {
		t.Errorf("postgres on db-1 refusal: %q", line)
	}
	r := env.cli(t, bob, "create", "--node", "db-1", "--login", "ubuntu", "--reason", "INC-11")
	if line := refusalLine(t, r); r.ExitCode == 0 || !strings.Contains(line, "no role you may request allows login ubuntu on db-1") {
		t.Fatalf("ubuntu on db-1: %s", r)
	}
	r = env.cli(t, bob, "create", "--node", "db-1", "--login", "postgres", "--reason", "INC-11 vacuum", "--duration", "10m")
	id := requestID(t, r)
	if !strings.Contains(r.Stdout, "request for login postgres on db-1 (role dba) is PENDING") {
		t.Fatalf("create: %s", r)
	}
	env.approve(t, lee, id, "PENDING")
	env.approve(t, mia, id, "APPROVED")
	show := bob.Bastion("requests", id)
	if !strings.Contains(show.Stdout, "resource: login postgres on db-1\n") {
		t.Fatalf("requests %s:\n%s", id, show)
	}
	allowedJump(t, bob, "postgres@db-1", "postgres")
	line := refusedJump(t, bob, "root@db-1")
	if !strings.Contains(line, "root") || !strings.Contains(line, "db-1") {
		t.Errorf("root on db-1 refusal: %q", line)
	}
	if who := bob.Bastion("whoami"); !strings.Contains(who.Stdout, "grant: login postgres on db-1 (role dba) via request "+id) {
		t.Errorf("whoami does not show the resource grant:\n%s", who)
	}

	// The same over SSH to the bastion, nothing installed: root on web-1
	// only, through web.
	r = bob.Bastion("request", "--node", "web-1", "--login", "root", "--reason", "INC-12 restart nginx", "--duration", "10m")
	id2 := requestID(t, r)
	if !strings.Contains(r.Stdout, "request for login root on web-1 (role web) is PENDING") {
		t.Fatalf("request over ssh: %s", r)
	}
	refusedJump(t, bob, "root@web-1")
	env.approve(t, lee, id2, "PENDING")
	env.approve(t, mia, id2, "APPROVED")
	allowedJump(t, bob, "root@web-1", "root")
	if line := refusedJump(t, bob, "postgres@web-1"); !strings.Contains(line, "postgres") || !strings.Contains(line, "web-1") {
		t.Errorf("postgres on web-1 refusal: %q", line)
	}
}

// TestForSessionGrant: a grant for one session binds to the first session
// that uses it, refuses a second, and ends when the first ends; the policy
// can require it.
func TestForSessionGrant(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccessRoles(t, rulesE2ERoles, nil)
	carol, lee, mia := env.user(t, "carol"), env.user(t, "lee"), env.user(t, "mia")

	r := carol.Bastion("request", "dba", "--reason", "INC-12")
	if line := refusalLine(t, r); r.ExitCode == 0 || !strings.Contains(line, "dba may only be granted for one session: ask again with --for-session") {
		t.Fatalf("request without --for-session: %s", r)
	}
	id := requestID(t, carol.Bastion("request", "dba", "--reason", "INC-12", "--for-session", "--duration", "10m"))
	env.approve(t, lee, id, "PENDING")
	env.approve(t, mia, id, "APPROVED")

	term := openShell(t, carol, "root@db-1")
	if show := carol.Bastion("requests", id); !regexp.MustCompile(`(?m)^for-session: .*bound to session \S+\)$`).MatchString(show.Stdout) {
		t.Fatalf("grant not bound to the open session:\n%s", show)
	}
	second := carol.SSH("root@db-1", "echo REACHED")
	if second.ExitCode == 0 || strings.Contains(second.Stdout, "REACHED") {
		t.Fatalf("a second session used the one-session grant: %s", second)
	}
	if line := refusalLine(t, second); !strings.Contains(line, "another session has used it") {
		t.Errorf("second session refusal: %q", line)
	}
	stillAlive(t, term, "FIRST")
	term.Send("exit\n")
	term.Wait(30 * time.Second)

	// The grant ended with the session: the next one is refused.
	if !poll(30*time.Second, func() bool {
		return !strings.Contains(carol.Bastion("whoami").Stdout, "via request "+id)
	}) {
		t.Fatalf("grant %s outlived its session:\n%s", id, carol.Bastion("whoami"))
	}
	refusedJump(t, carol, "root@db-1")
	if got := env.gh.Log(); !strings.Contains(got, "session-bound grant ended with its session") {
		t.Errorf("the log does not record the grant ending with its session")
	}

	// From the CLI: refused without --for-session, and the grant asked for
	// with it serves one session.
	r = env.cli(t, carol, "create", "--roles", "dba", "--reason", "INC-13", "--duration", "10m")
	if line := refusalLine(t, r); r.ExitCode == 0 || !strings.Contains(line, "dba may only be granted for one session: ask again with --for-session") {
		t.Fatalf("CLI request without --for-session: %s", r)
	}
	r = env.cli(t, carol, "create", "--roles", "dba", "--reason", "INC-13", "--duration", "10m", "--for-session")
	id2 := requestID(t, r)
	if !strings.Contains(r.Stdout, "request for dba for one session is PENDING") {
		t.Fatalf("CLI request with --for-session: %s", r)
	}
	env.approve(t, lee, id2, "PENDING")
	env.approve(t, mia, id2, "APPROVED")
	allowedJump(t, carol, "root@db-1", "root")
	if show := carol.Bastion("requests", id2); !regexp.MustCompile(`(?m)^for-session: .*bound to session \S+\)$`).MatchString(show.Stdout) {
		t.Fatalf("CLI grant not bound to the session that used it:\n%s", show)
	}
	if !poll(30*time.Second, func() bool {
		return !strings.Contains(carol.Bastion("whoami").Stdout, "via request "+id2)
	}) {
		t.Fatalf("grant %s outlived its session:\n%s", id2, carol.Bastion("whoami"))
	}
	refusedJump(t, carol, "root@db-1")
}
