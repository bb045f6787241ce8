package policy

import (
	"strings"
	"testing"
)

// rulesRoles: security reviews dba with an AND-rule (a dba-lead and a
// manager); webrev reviews web with two plain approvals; dev may request
// both, and dba only for one session.
const rulesRoles = `
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba], for_session_required: true}
  - name: devweb
    allow:
      request: {roles: [web]}
  - name: dba
    allow:
      logins: [postgres, root]
      node_labels: {team: data}
    deny:
      logins: [root]
      node_labels: {env: pci}
  - name: web
    allow:
      logins: [www]
      node_labels: {team: web}
  - name: security
    allow:
      review_requests:
        roles: [dba]
        approvals: [{roles: [dba-lead], count: 1}, {roles: [manager], count: 1}]
  - name: webrev
    allow:
      review_requests: {roles: [web], approvals: 2, denials: 2}
  - {name: dba-lead}
  - {name: manager}
`

func parseRules(t *testing.T) *Policy {
	t.Helper()
	p, err := Parse("rules.yaml", []byte(rulesRoles))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApprovalRule(t *testing.T) {
	p := parseRules(t)
	rule, ok := p.ApprovalRule([]string{"dba"})
	if !ok || rule.String() != "1 approval from dba-lead and 1 approval from manager; 1 denial denies" {
		t.Fatalf("dba rule = %v %q", ok, rule)
	}
	both, ok := p.ApprovalRule([]string{"dba", "web"})
	if !ok || both.String() != "1 approval from dba-lead and 1 approval from manager and 2 approvals from any reviewer; 2 denials deny" {
		t.Fatalf("dba+web rule = %v %q", ok, both)
	}
	if _, ok := p.ApprovalRule([]string{"dev"}); ok {
		t.Fatal("a role nobody reviews has a rule")
	}
}

func TestMeasure(t *testing.T) {
	p := parseRules(t)
	rule, _ := p.ApprovalRule([]string{"dba"})
	lead := Approval{Reviewer: "lee", Roles: []string{"dba-lead"}}
	mgr := Approval{Reviewer: "mia", Roles: []string{"manager"}}
	both := Approval{Reviewer: "bo", Roles: []string{"dba-lead", "manager"}}
	tests := []struct {
		name string
		in   []Approval
		met  bool
		want string
	}{
		{"none", nil, false, "needs 1 more approval from dba-lead and 1 more approval from manager"},
		{"lead only", []Approval{lead}, false, "needs 1 more approval from manager"},
		{"lead and manager", []Approval{lead, mgr}, true, "rule met: 1 from dba-lead (lee), 1 from manager (mia)"},
		{"in both groups counts once", []Approval{both}, false, "needs 1 more approval from manager"},
		{"same reviewer twice counts once", []Approval{both, both}, false, "needs 1 more approval from manager"},
		// bo first took the dba-lead place; lee can only fill that one, so
		// bo moves to manager.
		{"both then lead", []Approval{both, lead}, true, "rule met: 1 from dba-lead (lee), 1 from manager (bo)"},
		{"both then manager", []Approval{both, mgr}, true, "rule met: 1 from dba-lead (bo), 1 from manager (mia)"},
		{"no relevant role", []Approval{{Reviewer: "x"}}, false, "needs 1 more approval from dba-lead and 1 more approval from manager"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := rule.Measure(tt.in)
			if pr.Met != tt.met || pr.String() != tt.want {
				t.Fatalf("Measure = %v %q, want %v %q", pr.Met, pr.String(), tt.met, tt.want)
			}
		})
	}
	plain, _ := p.ApprovalRule([]string{"web"})
	if pr := plain.Measure([]Approval{{Reviewer: "a"}}); pr.Met || pr.String() != "needs 1 more approval from any reviewer" {
		t.Fatalf("plain rule: %q", pr)
	}
	if !rule.CanCount([]string{"manager"}) || rule.CanCount([]string{"security"}) || !plain.CanCount(nil) {
		t.Fatal("CanCount")
	}
	if got := rule.Relevant([]string{"security", "manager", "dba-lead"}); strings.Join(got, ",") != "dba-lead,manager" {
		t.Fatalf("Relevant = %v", got)
	}
}

func TestResourceGrant(t *testing.T) {
	p := parseRules(t)
	db1 := Node{Name: "db-1", Labels: map[string]string{"team": "data", "env": "prod"}}
	db2 := Node{Name: "db-2", Labels: map[string]string{"team": "data", "env": "prod"}}
	pci := Node{Name: "pci-1", Labels: map[string]string{"team": "data", "env": "pci"}}
	bob := Subject{User: "bob", Roles: []string{"dev"}}
	if got := p.ResourceRoles(bob, "postgres", db1); strings.Join(got, ",") != "dba" {
		t.Fatalf("ResourceRoles = %v", got)
	}
	if got := p.ResourceRoles(bob, "root", pci); len(got) != 0 {
		t.Fatalf("root on pci through dba, which denies it: %v", got)
	}
	bob.Resources = []Resource{{ID: "r1", Role: "dba", Login: "postgres", Node: "db-1"}}
	d := p.Decide(bob, "postgres", db1)
	if !d.Allowed || strings.Join(d.Grants, ",") != "r1" || strings.Join(d.Roles, ",") != "dba" ||
		d.Rule != "a resource grant of role dba allows login postgres on db-1" {
		t.Fatalf("granted login: %+v", d)
	}
	for _, c := range []struct {
		login string
		n     Node
	}{{"root", db1}, {"postgres", db2}} {
		if d := p.Decide(bob, c.login, c.n); d.Allowed {
			t.Fatalf("%s on %s allowed by a grant for postgres on db-1: %+v", c.login, c.n.Name, d)
		}
	}
	if got := p.Logins(bob, db1); strings.Join(got, ",") != "postgres" {
		t.Fatalf("Logins = %v", got)
	}
	if got := p.Logins(bob, db2); len(got) != 0 {
		t.Fatalf("Logins db-2 = %v", got)
	}
}

func TestForSessionRequired(t *testing.T) {
	p := parseRules(t)
	s := Subject{User: "bob", Roles: []string{"dev", "devweb"}}
	if !p.ForSessionRequired(s, []string{"dba"}) || p.ForSessionRequired(s, []string{"web"}) {
		t.Fatal("for_session_required")
	}
}

func TestApprovalGroupParseErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`approvals: []`, "must list at least one"},
		{`approvals: [{count: 1}]`, "entry needs roles"},
		{`approvals: [{roles: [dev], count: 0}]`, "count must be a whole number"},
		{`approvals: [{roles: [dev]}, {roles: [dev], count: 2}]`, "names roles dev twice"},
		{`approvals: [{roles: [nope]}]`, "nope"},
		{`approvals: [{roles: [dev], cnt: 1}]`, `unknown key "cnt"`},
	} {
		src := "roles:\n  - name: dev\n    allow:\n      review_requests:\n        roles: [dev]\n        " + c.body + "\n"
		_, err := Parse("r.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line containing %q", c.body, err, c.want)
		}
	}
}

func TestRequestHelp(t *testing.T) {
	p := parseRules(t)
	db1 := Node{Name: "db-1", Labels: map[string]string{"team": "data"}}
	got := p.RequestHelp(Subject{User: "bob", Roles: []string{"dev", "devweb"}}, "postgres", db1)
	want := []string{
		"dba: 1 approval from dba-lead and 1 approval from manager; 1 denial denies; at most 1h; for one session only (--for-session); allows this login (whole role, or request --node db-1 --login postgres)",
		"web: 2 approvals from any reviewer; 2 denials deny; at most 1h",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("RequestHelp =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Rules of several roles that cover the same requested role all apply at
// once: equal groups keep the largest count (whatever order their roles
// are written in), different groups all apply, plain counts merge into one
// "any reviewer" group with the largest count, and the most denials win.
func TestApprovalRuleOverlap(t *testing.T) {
	p, err := Parse("overlap.yaml", []byte(`
roles:
  - name: dba
  - {name: lead}
  - {name: manager}
  - name: r1
    allow:
      review_requests: {roles: [dba], approvals: [{roles: [lead, manager], count: 1}]}
  - name: r2
    allow:
      review_requests: {roles: [dba], approvals: [{roles: [manager, lead], count: 2}, {roles: [manager], count: 1}]}
  - name: r3
    allow:
      review_requests: {roles: [dba], approvals: 1, denials: 2}
  - name: r4
    allow:
      review_requests: {roles: [dba], approvals: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	rule, ok := p.ApprovalRule([]string{"dba"})
	if want := "2 approvals from lead or manager and 1 approval from manager and 3 approvals from any reviewer; 2 denials deny"; !ok || rule.String() != want {
		t.Fatalf("overlapping rules = %v %q, want %q", ok, rule, want)
	}
}
