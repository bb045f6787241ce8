package e2e_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/browser"
	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// cliAPIRoles: bob (a static user) may request dba; alice's approver role
// comes from her provider groups. dba asks reviewers for a reason.
const cliAPIRoles = `
users:
  - {name: bob, roles: [dev]}
claims_to_roles:
  - {claim: groups, value: approvers, roles: [approver]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba], max_duration: 1h}
  - name: dba
    options: {review_reason_required: true}
    allow:
      logins: [postgres]
      node_labels: {team: data}
  - name: approver
    allow:
      review_requests: {roles: [dba], approvals: 1}
`

// runCLI runs the gatehouse binary with args and returns what it printed.
func runCLI(t *testing.T, bin string, args ...string) e2e.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	return runResult(t, cmd)
}

// TestCLIRequestsThroughTheAPI: `gatehouse request` speaks the bastion's
// HTTP API (apiclient) as the signed-in person, with a user API token it
// gets over SSH. alice signs in with `gatehouse login --headless` (real
// dev-idp, headless Chromium); bob uses an admin-issued certificate and the
// explicit --bastion/--user/--identity/--host-ca flags. bob files a request,
// alice lists it and approves it; dba asks reviewers for a reason, so her
// approval without one is refused in one line, over the CLI and over ssh
// alike. The audit log names the people, never a bot. A token alice holds
// stops working when she logs out.
func TestCLIRequestsThroughTheAPI(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	bin := builder.BuildGatehouse(t)
	webAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webURL := "http://" + webAddr
	idp := e2e.StartDevIDP(t, webURL, e2e.DevIDPOptions{Binary: bin})
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  cliAPIRoles,
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
		Config: map[string]any{
			"web":  map[string]any{"listen": webAddr, "public_url": webURL},
			"oidc": idp.OIDCConfig(),
		},
	})
	hostCA := filepath.Join(t.TempDir(), "host_ca.pub")
	if err := os.WriteFile(hostCA, []byte(gh.HostCA+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	aliceHome := filepath.Join(t.TempDir(), "alice-gatehouse")
	cliLogin(t, gh, browser.New(t), "alice", aliceHome, false)
	alice := func(args ...string) e2e.Result {
		return runCLI(t, bin, append(append([]string{"request"}, args...), "--home", aliceHome)...)
	}
	bobUser := e2e.NewUser(t, gh, "bob", time.Hour)
	bob := func(args ...string) e2e.Result {
		return runCLI(t, bin, append(append([]string{"request"}, args...), "--bastion", gh.SSHAddr, "--user", "bob",
			"--identity", bobUser.KeyPath, "--host-ca", hostCA, "--home", t.TempDir())...)
	}

	r := bob("create", "--roles", "dba", "--reason", "INC-77 replica lag", "--duration", "20m")
	m := regexp.MustCompile(`(?m)^id: (\S+)$`).FindStringSubmatch(r.Stdout)
	if r.ExitCode != 0 || m == nil {
		t.Fatalf("bob's request create: %s", r)
	}
	id := m[1]
	if r := alice("ls"); r.ExitCode != 0 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(id)+` +PENDING +bob +dba .*INC-77 replica lag$`).MatchString(r.Stdout) {
		t.Fatalf("alice's request ls should list bob's request, id first: %s", r)
	}

	// No reason: refused, one line, on the CLI (API) and over ssh.
	if r := alice("approve", id); r.ExitCode != 1 || r.Stderr != "gatehouse: review refused: a reason is required to review request "+id+" (role dba asks reviewers to say why)\n" {
		t.Fatalf("alice approves without a reason through the API: want exit 1 and one line, got %s", r)
	}
	aliceSSH := e2e.NewUserWithCert(t, gh, "alice", filepath.Join(aliceHome, "id_ed25519"), filepath.Join(aliceHome, "id_ed25519-cert.pub"))
	if r := aliceSSH.Bastion("approve", id); r.ExitCode != 1 || !strings.Contains(r.Stderr, "a reason is required to review request "+id) {
		t.Fatalf("alice approves without a reason over ssh: %s", r)
	}
	if r := bob("show", id); r.ExitCode != 0 || !strings.Contains(r.Stdout, "state: PENDING") || strings.Contains(r.Stdout, "review:") {
		t.Fatalf("after two refused reviews: %s", r)
	}

	if r := alice("approve", id, "--reason", "lag confirmed on the dashboard"); r.ExitCode != 0 || r.Stdout != "you approved request "+id+"; it is now APPROVED\n" {
		t.Fatalf("alice approves with a reason: %s", r)
	}
	if r := bob("show", id); r.ExitCode != 0 || !strings.Contains(r.Stdout, "review: alice approved at ") || !strings.Contains(r.Stdout, "lag confirmed on the dashboard") {
		t.Fatalf("bob's view of the approved request: %s", r)
	}

	// The audit log names the people who acted through the API.
	waitAudit(t, gh, "request.create", "bob's request", func(ev auditLine) bool { return ev.Actor == "bob" && ev.Target == id })
	ev := waitAudit(t, gh, "request.approve", "alice's approval", func(ev auditLine) bool { return ev.Target == id })
	if ev.Actor != "alice" || ev.Fields["via"] != nil {
		t.Fatalf("request.approve %+v: want actor alice, no bot", ev)
	}
	waitAudit(t, gh, "user.api_token", "alice's API token", func(ev auditLine) bool {
		login, _ := ev.Fields["login_id"].(string)
		return ev.Actor == "alice" && login != "" && ev.Fields["token_sha256"] != nil
	})

	// A token alice got over ssh works until she logs out.
	tr := aliceSSH.Bastion("api-token")
	tm := regexp.MustCompile(`(?m)^token: (ghusr_[A-Za-z0-9_-]{43})\r?$`).FindStringSubmatch(tr.Stdout)
	if tr.ExitCode != 0 || tm == nil || !strings.Contains(tr.Stdout, "url: "+webURL) {
		t.Fatalf("ssh alice@bastion api-token: %s", tr)
	}
	if code, body := curl(t, "-H", "Authorization: Bearer "+tm[1], webURL+"/api/me"); code != "200" || !regexp.MustCompile(`"user":\s*"alice"`).MatchString(body) {
		t.Fatalf("GET /api/me with alice's token: %s %s", code, body)
	}
	if code, body := curl(t, "-H", "Authorization: Bearer "+tm[1], "-H", "Content-Type: application/json", "-d", `{"reason":"x","on_behalf_of":"bob"}`, webURL+"/api/requests/"+id+"/deny"); code != "403" || !strings.Contains(body, "acts only as its user") {
		t.Fatalf("on_behalf_of with a user token: %s %s", code, body)
	}
	if out, err := exec.Command(bin, "logout", "--home", aliceHome).CombinedOutput(); err != nil {
		t.Fatalf("gatehouse logout: %v\n%s", err, out)
	}
	if code, body := curl(t, "-H", "Authorization: Bearer "+tm[1], webURL+"/api/me"); code != "401" {
		t.Fatalf("alice's token after logout: %s %s, want 401", code, body)
	}

	// With no API where the bastion says it is, one clear line.
	gh.Stop()
	if r := bob("ls"); r.ExitCode == 0 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.HasPrefix(r.Stderr, "gatehouse request: ") {
		t.Fatalf("request ls with the bastion down: want one line, got %s", r)
	}
}
