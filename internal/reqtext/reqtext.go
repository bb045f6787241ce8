// Package reqtext prints access requests for a terminal: the listing, one
// request with its reviews, and the outcome of a wait. The bastion's own
// commands (`ssh bastion requests`) and the `gatehouse request` CLI print
// through it, so the two channels show the same lines. Every field a person
// chose (reasons, names) goes through termsafe.
package reqtext

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// List is the `requests` listing, one request per line, id first. The user,
// roles and reason are the requester's words shown to reviewers: termsafe
// also keeps a tab or newline in a reason from breaking the table.
func List(w io.Writer, reqs []storage.Request) {
	if len(reqs) == 0 {
		fmt.Fprintln(w, "no requests")
		return
	}
	f := termsafe.String
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range reqs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f(r.ID), f(r.State), f(r.User), Describe(r), r.Created.Local().Format("01-02 15:04"), f(r.Reason))
	}
	_ = tw.Flush()
}

// Approval is where a request stands against its approval rule, as the
// bastion explains it (access.Service.Explain, or the API's "approval").
type Approval struct {
	Rule, Status string
}

// Describe names what a request is for: "dba", or for a one-login request
// "login postgres on db-1 (role dba)" or "login postgres on nodes labelled
// team=db (role dba)"; " for one session" when the grant is bound to one
// session.
func Describe(r storage.Request) string {
	s := strings.Join(termsafe.Strings(r.Roles), ",")
	if r.IsResource() {
		s = fmt.Sprintf("login %s on %s (role %s)", termsafe.String(r.Login), termsafe.String(r.Where()), s)
	}
	if r.ForSession {
		s += " for one session"
	}
	return s
}

// Show is `requests ID`: a request with its approval rule and reviews. The
// reason, the reviewers' reasons and the closing note are other people's
// words.
func Show(w io.Writer, r storage.Request, st Approval) {
	f := termsafe.String
	fmt.Fprintf(w, "id: %s\nstate: %s\nuser: %s\nroles: %s\n", f(r.ID), f(r.State), f(r.User), strings.Join(termsafe.Strings(r.Roles), ","))
	if len(r.Requested) > 0 {
		fmt.Fprintf(w, "requested: %s\n", strings.Join(termsafe.Strings(r.Requested), ","))
	}
	if r.IsResource() {
		fmt.Fprintf(w, "resource: login %s on %s\n", f(r.Login), f(r.Where()))
	}
	if r.ForSession {
		bound := "not used yet"
		if r.Session != "" {
			bound = "bound to session " + f(r.Session)
		}
		fmt.Fprintf(w, "for-session: ends with the first session that uses it (%s)\n", bound)
	}
	fmt.Fprintf(w, "reason: %s\nduration: %s\ncreated: %s\n", f(r.Reason), r.Duration, r.Created.Local().Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "rule: %s\napproval: %s\n", f(st.Rule), f(st.Status))
	if r.GrantStart != nil && r.GrantEnd != nil {
		fmt.Fprintf(w, "access: %s to %s\n", r.GrantStart.Local().Format("15:04:05"), r.GrantEnd.Local().Format("2006-01-02 15:04:05 MST"))
	}
	for _, rv := range r.Reviews {
		verdict := "denied"
		if rv.Approve {
			verdict = "approved"
		}
		if len(rv.Roles) > 0 {
			verdict += " " + strings.Join(termsafe.Strings(rv.Roles), ",")
		}
		fmt.Fprintf(w, "review: %s %s at %s %s\n", f(rv.Reviewer), verdict, rv.Time.Local().Format("15:04:05"), f(rv.Reason))
	}
	if r.StateReason != "" {
		fmt.Fprintf(w, "note: %s (%s)\n", f(r.StateReason), f(r.StateBy))
	}
}

// Reviewed tells a reviewer what their review did: "you approved web of
// request ID; it is now PENDING", roles being the ones approved when not
// all, and while the request still waits, where it stands against its rule.
func Reviewed(w io.Writer, r storage.Request, approve bool, roles []string, st Approval) {
	verb := "denied"
	if approve {
		verb = "approved"
	}
	if len(roles) > 0 {
		verb += " " + strings.Join(termsafe.Strings(roles), ",") + " of"
	}
	fmt.Fprintf(w, "you %s request %s; it is now %s\n", verb, termsafe.String(r.ID), termsafe.String(r.State))
	if r.State == storage.StatePending {
		fmt.Fprintf(w, "approval: %s\n", termsafe.String(st.Status))
	}
}

// Outcome prints how a waited-for request ended and returns the exit
// status: 0 only when it was approved.
func Outcome(w io.Writer, r storage.Request) int {
	switch r.State {
	case storage.StateApproved:
		end := ""
		if r.GrantEnd != nil {
			end = " until " + r.GrantEnd.Local().Format("2006-01-02 15:04 MST")
		}
		fmt.Fprintf(w, "request %s APPROVED: %s granted%s\n", r.ID, Describe(r), end)
		return 0
	default:
		why := ""
		if r.StateReason != "" {
			// The reviewer's words, shown to the requester.
			why = ": " + termsafe.String(r.StateReason)
		}
		fmt.Fprintf(w, "request %s %s%s\n", r.ID, r.State, why)
		return 1
	}
}

// Created is what filing a request prints: its id on a line of its own
// (scripts read `id: ID`), then what happens next and, when the rule asks
// for more than one approval, what it still needs.
func Created(w io.Writer, r storage.Request, approveHint, status string) {
	fmt.Fprintf(w, "id: %s\n", r.ID)
	fmt.Fprintf(w, "request for %s is %s; an approver can run: %s %s\n", Describe(r), r.State, approveHint, r.ID)
	if status != "" {
		fmt.Fprintf(w, "approval: %s\n", termsafe.String(status))
	}
}
