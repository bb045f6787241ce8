package e2e_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// Locks end to end: `gatehouse lock` run by the operator in another process
// (sharing only the database with the running bastion) closes the user's
// live sessions, turns new connections away, and lifts on unlock or by
// itself after --ttl.

// lockNotice is the line on a session closed by a lock, whichever path
// closes it first (the access watch or the proxy's once-a-second
// re-check). It never names the lock's reason.
var lockNotice = regexp.MustCompile(`gatehouse: your access was locked at \d\d:\d\d; session closed`)

func TestLockClosesSessionsAndRefuses(t *testing.T) {
	env := startAccess(t, nil)
	gh := env.gh
	bob, carol := env.user(t, "bob"), env.user(t, "carol")
	allowedJump(t, bob, "ubuntu@web-1", "ubuntu")

	term := openShell(t, bob, "ubuntu@web-1")
	other := openShell(t, carol, "ubuntu@web-1")

	// The lock takes effect somewhere inside the lock command, so the
	// session's lag is measured from the command's start: an upper bound
	// that includes starting the (race-built) gatehouse process.
	before := time.Now()
	r := gh.MustRun("lock", "--user", "bob", "--reason", "investigation")
	ran := time.Since(before)
	if !strings.Contains(r.Stdout, "locked bob until unlocked") {
		t.Errorf("lock output: want `locked bob until unlocked`, got %s", r)
	}
	if r.Stderr != "" || strings.Contains(r.Stdout, "level=") {
		t.Errorf("lock should print only its result, no log lines: %s", r)
	}
	seen := closedWithNotice(t, term, lockNotice, 30*time.Second)
	lag := seen.Sub(before)
	t.Logf("bob's session closed at most %v after the lock (the lock command itself took %v)", lag, ran)
	if lag > 8*time.Second {
		t.Errorf("bob's session closed %v after `gatehouse lock` started; want within a few seconds", lag)
	}
	// The notice must not tell bob what he is investigated for.
	if strings.Contains(term.Output(), "investigation") {
		t.Errorf("the session notice leaks the lock reason: %q", term.Output())
	}

	t.Run("new connections are refused naming the lock", func(t *testing.T) {
		r := bob.SSH("ubuntu@web-1", "echo REACHED")
		if r.ExitCode == 0 || strings.Contains(r.Stdout, "REACHED") {
			t.Fatalf("locked bob reached web-1: %s", r)
		}
		if !strings.Contains(r.Stderr, "gatehouse:") || !strings.Contains(r.Stderr, "bob is locked") || strings.Contains(r.Stderr, "investigation") {
			t.Errorf("refusal should name the lock, not its reason, in a gatehouse: line, got %s", r)
		}
		t.Logf("refusal: %q", r.Stderr)
		r = bob.Bastion("whoami")
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, "bob is locked") {
			t.Errorf("locked bob ran a bastion command: %s", r)
		}
		r = bob.Bastion("request", "dba", "--reason", "let me back in")
		if r.ExitCode == 0 || idLine.MatchString(r.Stdout) {
			t.Errorf("locked bob filed a request: %s", r)
		}
	})
	t.Run("policy check says locked", func(t *testing.T) {
		r := gh.Run("policy", "check", "--user", "bob", "--login", "ubuntu", "--node", "web-1")
		if r.ExitCode != 1 || !strings.Contains(r.Stdout, "denied: bob is locked (investigation)") {
			t.Errorf("policy check for locked bob: want exit 1 and `denied: bob is locked`, got %s", r)
		}
	})
	t.Run("other users are not affected", func(t *testing.T) {
		stillAlive(t, other, "CAROL")
		allowedJump(t, carol, "ubuntu@web-1", "ubuntu")
	})

	t.Run("unlock restores access", func(t *testing.T) {
		r := gh.MustRun("unlock", "--user", "bob")
		if !strings.Contains(r.Stdout, "unlocked bob") {
			t.Errorf("unlock output: want `unlocked bob`, got %s", r)
		}
		allowedJump(t, bob, "ubuntu@web-1", "ubuntu")
		term := openShell(t, bob, "ubuntu@web-1")
		term.Send("exit 0\n")
		if code := term.Wait(30 * time.Second); code != 0 {
			t.Fatalf("session after unlock: want exit 0, got %d", code)
		}
	})

	t.Run("a lock with --ttl lifts by itself", func(t *testing.T) {
		gh.MustRun("lock", "--user", "bob", "--reason", "cool-off", "--ttl", "3s")
		// Right after the lock bob is out, even though the ttl is short:
		// the lock is in force at once.
		r := bob.SSH("ubuntu@web-1", "echo REACHED")
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, "bob is locked") {
			t.Fatalf("bob right after a 3s lock: want refused naming the lock, got %s", r)
		}
		var last e2e.Result
		if !poll(60*time.Second, func() bool {
			last = bob.SSH("ubuntu@web-1", "id -un")
			return last.ExitCode == 0 && last.Stdout == "ubuntu\n"
		}) {
			t.Fatalf("the 3s lock never lifted; last attempt: %s", last)
		}
		if r := gh.Run("policy", "check", "--user", "bob", "--login", "ubuntu", "--node", "web-1"); r.ExitCode != 0 {
			t.Errorf("policy check after the ttl lock lifted: want allowed, got %s", r)
		}
	})
}

// TestLockEndsGrantSessions: a lock beats an approved grant too.
func TestLockEndsGrantSessions(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccess(t, nil)
	bob, alice := env.user(t, "bob"), env.user(t, "alice")
	id := env.request(t, bob, "dba", "INC-15 locks", "10m")
	env.approve(t, alice, id, "APPROVED")
	term := openShell(t, bob, "root@db-1")

	env.gh.MustRun("lock", "--user", "bob", "--reason", "investigation")
	closedWithNotice(t, term, lockNotice, 30*time.Second)
	// The refusal is the only thing bob reads: no "open failed", no
	// "stdio forwarding failed", no kex error from his client after it.
	r := bob.SSH("root@db-1", "echo REACHED")
	if r.ExitCode == 0 || strings.Contains(r.Stdout, "REACHED") {
		t.Fatalf("locked bob reached db-1: %s", r)
	}
	if got := strings.TrimSpace(r.Stderr); !regexp.MustCompile(`^gatehouse: bob is locked; contact your security team$`).MatchString(got) {
		t.Errorf("locked bob's ssh -J stderr: want only the gatehouse: line, got %q", r.Stderr)
	}
	// The lock ended the grant: unlock gives bob back his own roles only.
	env.gh.MustRun("unlock", "--user", "bob")
	if line := refusedJump(t, bob, "root@db-1"); !strings.Contains(line, "may not log in as root on db-1") {
		t.Errorf("after unlock bob's refusal: %q", line)
	}
	show := bob.Bastion("requests", id)
	if !strings.Contains(show.Stdout, "REVOKED") {
		t.Errorf("the grant a lock ended should read REVOKED: %s", show)
	}
	audit := env.gh.MustRun("audit", "ls", "--type", "request.revoke", "--json").Stdout
	if !strings.Contains(audit, id) || !strings.Contains(audit, `"lock":true`) {
		t.Errorf("the lock's revocation of %s is not in the audit log: %s", id, audit)
	}
}
