package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
)

// hostile is what a user types to attack the terminal of whoever lists it:
// an OSC 52 clipboard write, an OSC 0 window title, a screen clear, a
// carriage return that overwrites, a C1 CSI, a bidi override and a raw
// 8-bit CSI byte. (No NUL: it cannot be in an argv; no backslash or
// quotes: the bastion splits its commands' words like a shell.)
const hostile = "\x1b]52;c;cHduZWQ=\a\x1b]0;owned\a\x1b[2J\rfake\u009b31m\u202eexe\x9b"

// TestTerminalEscapesReachNoOperator: what a user chose reaches other
// people's terminals only as visible text. bob runs an exec command with
// an OSC 52 clipboard write through real OpenSSH and asks for access with
// the same bytes in his reason; the security team's `sessions ls` and
// `audit ls`, and the reviewer's `ssh alice@bastion requests [ID]` and
// `gatehouse request ls|show` carry no ESC, no C1, no bidi override.
func TestTerminalEscapesReachNoOperator(t *testing.T) {
	env := startAccess(t, nil)
	bob, alice := env.user(t, "bob"), env.user(t, "alice")

	r := bob.SSH("ubuntu@web-1", "echo ran # "+hostile)
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "ran") {
		t.Fatalf("bob's exec: %s", r)
	}
	var ls e2e.Result
	if !poll(30*time.Second, func() bool {
		ls = env.gh.MustRun("sessions", "ls", "--user", "bob")
		return strings.Contains(ls.Stdout, "echo ran")
	}) {
		t.Fatalf("bob's session never appeared in sessions ls:\n%s", ls)
	}
	termsafetest.Inert(t, "sessions ls", ls.Stdout)
	if !strings.Contains(ls.Stdout, `echo ran # \x1b]52;c;`) {
		t.Errorf("sessions ls does not show the escape visibly:\n%s", ls.Stdout)
	}
	js := env.gh.MustRun("sessions", "ls", "--user", "bob", "--json")
	termsafetest.Inert(t, "sessions ls --json", js.Stdout)
	var s struct{ Command string }
	if err := json.Unmarshal([]byte(strings.SplitN(js.Stdout, "\n", 2)[0]), &s); err != nil || !strings.HasPrefix(s.Command, "echo ran # \x1b]52;c;cHduZWQ=\a") {
		t.Errorf("sessions ls --json lost the exact command: %q (%v)", s.Command, err)
	}
	audit := env.gh.MustRun("audit", "ls", "--type", "exec", "--user", "bob")
	termsafetest.Inert(t, "audit ls", audit.Stdout)
	if !strings.Contains(audit.Stdout, `\x1b]52`) {
		t.Errorf("audit ls lacks bob's exec:\n%s", audit.Stdout)
	}

	id := env.request(t, bob, "dba", "INC-5 "+hostile, "10m")
	for name, out := range map[string]e2e.Result{
		"ssh alice@bastion requests":    alice.Bastion("requests"),
		"ssh alice@bastion requests ID": alice.Bastion("requests", id),
		"gatehouse request ls":          env.cli(t, alice, "ls"),
		"gatehouse request show ID":     env.cli(t, alice, "show", id),
	} {
		if out.ExitCode != 0 {
			t.Errorf("%s: %s", name, out)
			continue
		}
		termsafetest.Inert(t, name, strings.ReplaceAll(out.Stdout, "\r\n", "\n"))
		// (The bastion splits a command's words at the CR, and reads the
		// stray 8-bit byte as U+FFFD, before the reason is stored.)
		if !strings.Contains(out.Stdout, `INC-5 \x1b]52;c;cHduZWQ=\a\x1b]0;owned\a\x1b[2J`) || !strings.Contains(out.Stdout, `\u009b31m\u202eexe`) {
			t.Errorf("%s does not show the reason escaped:\n%s", name, out.Stdout)
		}
	}
	// The requester sees the reviewer's reason escaped too.
	if r := env.cli(t, alice, "deny", id, "--reason", "no "+hostile); r.ExitCode != 0 {
		t.Fatalf("alice denies: %s", r)
	}
	show := bob.Bastion("requests", id)
	termsafetest.Inert(t, "requests ID after the review", show.Stdout)
	if !strings.Contains(show.Stdout, `no \x1b]52`) {
		t.Errorf("the reviewer's reason is missing:\n%s", show.Stdout)
	}
}

// TestNoRequestOracle: carol, who has no rights on bob's request, gets for
// its real id exactly what a made-up id of the same shape gets, over
// OpenSSH and through the CLI: stdout, stderr and exit status, byte for
// byte. bob and alice, who have rights, still get the real answers.
func TestNoRequestOracle(t *testing.T) {
	env := startAccess(t, nil)
	bob, carol, alice := env.user(t, "bob"), env.user(t, "carol"), env.user(t, "alice")
	real := env.request(t, bob, "dba", "INC-6", "10m")
	if len(real) != 14 {
		t.Errorf("request id %q: want 14 characters (70 random bits)", real)
	}
	fake := "abcdefghijklmn"
	same := func(t *testing.T, what string, run func(id string) e2e.Result) {
		t.Helper()
		a, f := run(real), run(fake)
		a.Stdout, a.Stderr = strings.ReplaceAll(a.Stdout, real, "ID"), strings.ReplaceAll(a.Stderr, real, "ID")
		f.Stdout, f.Stderr = strings.ReplaceAll(f.Stdout, fake, "ID"), strings.ReplaceAll(f.Stderr, fake, "ID")
		if a != f {
			t.Errorf("%s: real id:\n%s\nmade-up id:\n%s", what, a, f)
		}
		if a.ExitCode != 1 || !strings.Contains(a.Stderr, "gatehouse: no request ID that you may ") {
			t.Errorf("%s: want exit 1 and `no request ID that you may ...`, got %s", what, a)
		}
	}
	for _, cmd := range []string{"approve", "deny", "cancel", "drop", "requests"} {
		same(t, "ssh carol@bastion "+cmd, func(id string) e2e.Result { return carol.Bastion(cmd, id) })
	}
	for _, cmd := range []string{"approve", "deny", "cancel", "drop", "show"} {
		same(t, "gatehouse request "+cmd, func(id string) e2e.Result { return env.cli(t, carol, cmd, id) })
	}
	if r := bob.Bastion("approve", real); r.ExitCode != 1 || !strings.Contains(r.Stderr, "you cannot review your own request") {
		t.Errorf("self-approval: %s", r)
	}
	env.approve(t, alice, real, "APPROVED")
	if r := bob.Bastion("drop", real); r.ExitCode != 0 {
		t.Errorf("bob drops his grant: %s", r)
	}
}
