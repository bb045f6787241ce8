package proxy

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
)

// TestRefusalEscapesTheLogin: the login in a refusal is what the client
// sent, so it is shown escaped.
func TestRefusalEscapesTheLogin(t *testing.T) {
	for name, attack := range termsafetest.Attacks {
		msg := refusal("bob", attack, "db-1", Verdict{Reason: "login " + attack + " is not valid", Hint: "request one"}).Line
		termsafetest.Inert(t, name, msg)
		if !strings.HasPrefix(msg, "gatehouse: bob may not log in as ") || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q", name, msg)
		}
	}
}

// TestRefusalOfALock: a refusal worded whole (a lock) replaces the "may
// not log in as" line and adds no hint.
func TestRefusalOfALock(t *testing.T) {
	v := Verdict{Rule: RuleLock, Reason: "bob is locked", Notice: "bob is locked; contact your security team", Hint: "request one"}
	if got, want := refusal("bob", "root", "db-1", v).Line, "gatehouse: bob is locked; contact your security team"; got != want {
		t.Errorf("refusal = %q, want %q", got, want)
	}
}
