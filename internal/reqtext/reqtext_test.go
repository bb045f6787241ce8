package reqtext

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Reviewed is the one line both `ssh bastion approve` and `gatehouse
// request approve` print, naming the roles of a partial approval and,
// while the request waits, what it still needs.
func TestReviewed(t *testing.T) {
	st := Approval{Rule: "1 approval from dba-lead and 1 approval from manager; 1 denial denies", Status: "web: needs 1 more approval from dba-lead"}
	for _, tc := range []struct {
		name    string
		state   string
		approve bool
		roles   []string
		want    string
	}{
		{"all, decided", storage.StateApproved, true, nil, "you approved request r1; it is now APPROVED\n"},
		{"some, pending", storage.StatePending, true, []string{"web"}, "you approved web of request r1; it is now PENDING\napproval: web: needs 1 more approval from dba-lead\n"},
		{"denied", storage.StateDenied, false, nil, "you denied request r1; it is now DENIED\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			Reviewed(&b, storage.Request{ID: "r1", State: tc.state}, tc.approve, tc.roles, st)
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}
