package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

const commandRoles = `
users:
  - {name: bob, roles: [dev]}
  - {name: carol, roles: [dev]}
  - {name: alice, roles: [approver]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba], max_duration: 1h, reason_required: true}
  - name: dba
    allow:
      logins: [root]
      node_labels: {team: data}
  - name: approver
    allow:
      review_requests: {roles: [dba], approvals: 1}
`

// commandBastion builds a bastion on SQLite (without serving) whose
// bastion commands the test calls directly.
func commandBastion(t *testing.T) *Bastion {
	t.Helper()
	dir := t.TempDir()
	roles := filepath.Join(dir, "roles.yaml")
	if err := os.WriteFile(roles, []byte(commandRoles), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(dir, "gatehouse.yaml"), []byte(fmt.Sprintf("data_dir: %s\nroles_file: %s\n", filepath.Join(dir, "data"), roles)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("build bastion: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type cmdResult struct {
	stdout, stderr string
	code           int
}

func runCmd(b *Bastion, user string, args ...string) cmdResult {
	var o, e bytes.Buffer
	code := b.sshCommands()[args[0]](context.Background(), proxy.Identity{User: user}, args[1:], strings.NewReader(""), &o, &e)
	return cmdResult{o.String(), e.String(), code}
}

var idOut = regexp.MustCompile(`(?m)^id: (\S+)$`)

// TestRequestListingsEscapeTheReason: a reason full of terminal escapes,
// given by the requester, reaches the reviewer's `requests` and
// `requests ID` (and the requester's outcome line) as visible text.
func TestRequestListingsEscapeTheReason(t *testing.T) {
	b := commandBastion(t)
	r := runCmd(b, "bob", "request", "dba", "--reason", "INC-1", termsafetest.Payload)
	m := idOut.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("request: %+v", r)
	}
	id := m[1]
	if len(id) != 14 {
		t.Errorf("new id %q: want 14 characters (70 bits)", id)
	}
	list := runCmd(b, "alice", "requests")
	termsafetest.Inert(t, "requests", list.stdout)
	if !strings.Contains(list.stdout, `INC-1 \x1b]52;c;`) || strings.Count(list.stdout, "\n") != 1 {
		t.Errorf("requests: want one line with the escaped reason, got %q", list.stdout)
	}
	show := runCmd(b, "alice", "requests", id)
	termsafetest.Inert(t, "requests ID", show.stdout)
	if !strings.Contains(show.stdout, `reason: INC-1 \x1b]52;c;`) {
		t.Errorf("requests ID: %q", show.stdout)
	}
	deny := runCmd(b, "alice", "deny", id, "--reason", "no", termsafetest.Payload)
	if deny.code != 0 {
		t.Fatalf("deny: %+v", deny)
	}
	show = runCmd(b, "bob", "requests", id)
	termsafetest.Inert(t, "requests ID after a review", show.stdout)
	if !strings.Contains(show.stdout, `review: alice denied`) || !strings.Contains(show.stdout, `no \x1b]52`) {
		t.Errorf("requests ID after a review: %q", show.stdout)
	}
	refused := runCmd(b, "bob", "request", termsafetest.Payload, "--reason", "x")
	termsafetest.Inert(t, "refused request", refused.stderr)
	unknown := runCmd(b, "alice", "approve", termsafetest.Payload)
	termsafetest.Inert(t, "approve of an id full of escapes", unknown.stderr)
}

// TestNoRequestOracleOverSSH: for someone with no rights on a request,
// every bastion command answers its real id exactly as it answers a
// made-up one: the same stdout, stderr and exit status, byte for byte.
func TestNoRequestOracleOverSSH(t *testing.T) {
	b := commandBastion(t)
	m := idOut.FindStringSubmatch(runCmd(b, "bob", "request", "dba", "--reason", "INC-2").stdout)
	if m == nil {
		t.Fatal("no request id")
	}
	real := m[1]
	fake := "abcdefghijklmn"
	for _, cmd := range [][]string{{"approve"}, {"deny"}, {"deny", "--reason", "x"}, {"cancel"}, {"drop"}, {"requests"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			withID := func(id string) []string { return append([]string{cmd[0], id}, cmd[1:]...) }
			a, f := runCmd(b, "carol", withID(real)...), runCmd(b, "carol", withID(fake)...)
			a.stderr = strings.ReplaceAll(a.stderr, real, "ID")
			f.stderr = strings.ReplaceAll(f.stderr, fake, "ID")
			if a != f {
				t.Fatalf("real id: %+v\nmade-up id: %+v", a, f)
			}
			if a.code != 1 || !strings.HasPrefix(a.stderr, "gatehouse: no request ID that you may ") || a.stdout != "" {
				t.Fatalf("want exit 1 and one `no request` line, got %+v", a)
			}
		})
	}
	// The people with rights still get real answers.
	if r := runCmd(b, "bob", "approve", real); r.code != 1 || !strings.Contains(r.stderr, "you cannot review your own request") {
		t.Errorf("self-approval: %+v", r)
	}
	if r := runCmd(b, "alice", "cancel", real); r.code != 1 || !strings.Contains(r.stderr, "you may only cancel your own requests") {
		t.Errorf("a reviewer's cancel: %+v", r)
	}
	if r := runCmd(b, "bob", "cancel", real); r.code != 0 {
		t.Errorf("the requester's cancel: %+v", r)
	}
}

// TestWhoamiEscapes: whoami shows a locked user that they are locked, and
// never the lock's reason (which may be about an investigation).
func TestWhoamiEscapes(t *testing.T) {
	env := newAuthorizerEnv(t)
	if _, err := env.svc.Lock(context.Background(), access.Admin(), "bob", termsafetest.Payload, 0); err != nil {
		t.Fatal(err)
	}
	desc, err := env.az.Describe(context.Background(), proxy.Identity{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	termsafetest.Inert(t, "whoami", desc)
	if !strings.Contains(desc, "LOCKED: contact your security team") || strings.Contains(desc, "52") {
		t.Errorf("whoami: %q", desc)
	}
}
