package e2e_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// Request on the refused connection: plain OpenSSH under a pty, nothing
// installed. bob is refused root on db-1, answers the bastion's prompts on
// the same connection, alice approves from another one, and bob's session
// goes on into db-1.

// jitFiled matches the line that names the new request.
var jitFiled = regexp.MustCompile(`gatehouse: request ([a-z2-7]+) filed for (\S+), (\S+); who can approve: ([^\r\n]*)\r\n`)

// jitAsk answers the prompts for role (by name or number), reason and
// duration ("" for the default) and returns the request's id once the
// bastion waits for a decision.
func jitAsk(t *testing.T, term *e2e.Term, role, reason, duration string) string {
	t.Helper()
	term.Expect(regexp.MustCompile(`role \[1-2 or its name, default 1\]: `), 60*time.Second)
	term.Send(role + "\r")
	term.Expect(regexp.MustCompile(`reason \(required\): `), 10*time.Second)
	term.Send(reason + "\r")
	term.Expect(regexp.MustCompile(`duration \[1h, at most 1h\]: `), 10*time.Second)
	term.Send(duration + "\r")
	m := term.Expect(jitFiled, 30*time.Second)
	term.Expect(regexp.MustCompile(`waiting for approval by a `+regexp.QuoteMeta(m[2])+` reviewer`), 10*time.Second)
	// Where it stands against its rule, in the words of `requests ID`.
	term.Expect(regexp.MustCompile(`\r\x1b\[Kapproval: needs 1 more approval from any reviewer\r\n`), 10*time.Second)
	return m[1]
}

func TestJITRequestOnRefusal(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccess(t, map[string]any{"requests": map[string]any{"pending_ttl": "30s"}})
	bob, carol, alice := env.user(t, "bob"), env.user(t, "carol"), env.user(t, "alice")

	t.Run("approved: the same session goes on into the node", func(t *testing.T) {
		term := bob.Interactive("root@db-1")
		term.Expect(regexp.MustCompile(`gatehouse: bob may not log in as root on db-1 \(no role allows login root on \{env: prod\}\)\r\n`), 60*time.Second)
		term.Expect(regexp.MustCompile(`1\) breakglass \(up to 1h\)\r\n  2\) dba \(up to 1h\)`), 10*time.Second)
		id := jitAsk(t, term, "2", "INC-9 disk full", "20m")
		if !strings.Contains(term.Output(), "filed for dba, 20m; who can approve: alice, ann") {
			t.Errorf("the filed line should name the role, the duration and the approvers: %q", term.Output())
		}
		// Filed as any request is: reviewers are notified.
		if m := env.webhook.waitWebhook(t, id, "created"); m.Request.User != "bob" || strings.Join(m.Request.Roles, ",") != "dba" {
			t.Fatalf("webhook created message: want bob asking for dba, got %+v", m)
		}

		// The window changes while bob waits: the node's terminal starts
		// at the new size.
		term.Resize(30, 100)
		if r := alice.Bastion("approve", id, "--reason", "go"); r.ExitCode != 0 {
			t.Fatalf("alice approves %s over ssh: %s", id, r)
		}
		term.Expect(regexp.MustCompile(`gatehouse: request `+id+` approved by alice; connecting to root@db-1\r\n`), 30*time.Second)
		term.Send("id; stty size\r")
		term.Expect(regexp.MustCompile(`uid=0\(root\)`), 60*time.Second)
		term.Expect(regexp.MustCompile(`\n30 100\r`), 30*time.Second)
		term.Send("exit 0\r")
		if code := term.Wait(30 * time.Second); code != 0 {
			t.Fatalf("bob's approved session exited %d; output %q", code, term.Output())
		}
		if got := env.state(t, bob, id); got != "APPROVED" {
			t.Fatalf("request %s: want APPROVED, got %s", id, got)
		}
		// The session is recorded and indexed like any other.
		ls := env.gh.MustRun("sessions", "ls", "--user", "bob", "--node", "db-1", "--json")
		if !strings.Contains(ls.Stdout, `"login":"root"`) {
			t.Fatalf("sessions ls does not list bob's root session on db-1: %s", ls)
		}
	})

	t.Run("Ctrl-C cancels the request", func(t *testing.T) {
		term := carol.Interactive("root@db-1")
		id := jitAsk(t, term, "dba", "INC-10", "")
		term.Send("\x03")
		term.Expect(regexp.MustCompile(`gatehouse: request `+id+` cancelled\r\n`), 30*time.Second)
		if code := term.Wait(30 * time.Second); code == 0 {
			t.Fatalf("cancelled: ssh exited 0; output %q", term.Output())
		}
		if got := env.state(t, carol, id); got != "CANCELLED" {
			t.Fatalf("request %s after Ctrl-C: want CANCELLED, got %s", id, got)
		}
		// Filed and withdrawn on the record, by carol.
		for _, typ := range []string{"request.create", "request.cancel"} {
			if r := env.gh.MustRun("audit", "ls", "--type", typ, "--user", "carol"); !strings.Contains(r.Stdout, id) {
				t.Errorf("audit ls --type %s --user carol does not show request %s: %s", typ, id, r)
			}
		}
	})

	t.Run("denied: one line and the session ends", func(t *testing.T) {
		term := carol.Interactive("root@db-1")
		id := jitAsk(t, term, "2", "INC-11", "")
		if r := alice.Bastion("deny", id, "--reason", "use the replica"); r.ExitCode != 0 {
			t.Fatalf("alice denies %s: %s", id, r)
		}
		term.Expect(regexp.MustCompile(`\x1b\[Kgatehouse: request `+id+` denied by alice: use the replica; session closed\r\n`), 30*time.Second)
		if code := term.Wait(30 * time.Second); code == 0 {
			t.Fatalf("denied: ssh exited 0; output %q", term.Output())
		}
		if rest, _ := term.TryExpect(regexp.MustCompile(`gatehouse:`), time.Second); rest != nil {
			t.Fatalf("more than one line after the denial: %q", term.Output())
		}
	})

	t.Run("expired: one line and the session ends", func(t *testing.T) {
		term := carol.Interactive("root@db-1")
		id := jitAsk(t, term, "dba", "INC-12", "")
		term.Expect(regexp.MustCompile(`gatehouse: request `+id+` expired(: [^\r\n]*)?; session closed\r\n`), 90*time.Second)
		if code := term.Wait(30 * time.Second); code == 0 {
			t.Fatalf("expired: ssh exited 0; output %q", term.Output())
		}
	})

	t.Run("without a terminal the refusal stays one line", func(t *testing.T) {
		line := refusedJump(t, carol, "root@db-1")
		want := "gatehouse: carol may not log in as root on db-1 (no role allows login root on {env: prod}); request one with: ssh bastion request breakglass,dba --reason ..., or this login only with: ssh bastion request --node db-1 --login root --reason ..."
		if line != want {
			t.Fatalf("non-terminal refusal:\n got %q\nwant %q", line, want)
		}
	})
	t.Run("the session ends with its grant", func(t *testing.T) {
		term := carol.Interactive("root@db-1")
		id := jitAsk(t, term, "dba", "INC-13", "20s")
		if r := alice.Bastion("approve", id); r.ExitCode != 0 {
			t.Fatalf("alice approves %s: %s", id, r)
		}
		term.Expect(regexp.MustCompile(`gatehouse: request `+id+` approved by alice; connecting to root@db-1\r\n`), 30*time.Second)
		stillAlive(t, term, "GRANTED")
		closedWithNotice(t, term, regexp.MustCompile(`gatehouse: access via request `+id+` ended at`), 90*time.Second)
	})
}
