package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// testNodes are the nodes described at the top of testdata/roles.yaml.
var testNodes = map[string]Node{
	"db-1":       {Name: "db-1", Labels: map[string]string{"env": "prod", "team": "data"}},
	"web-1":      {Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}},
	"web-prod-1": {Name: "web-prod-1", Labels: map[string]string{"env": "prod", "team": "web", "tier": "web-frontend"}},
	"dev-1":      {Name: "dev-1", Labels: map[string]string{"env": "dev", "team": "web"}},
	"pci-1":      {Name: "pci-1", Labels: map[string]string{"env": "pci", "team": "data"}},
	"cust-1":     {Name: "cust-1", Labels: map[string]string{"env": "staging", "team": "web", "customer": "acme"}},
	"bare":       {Name: "bare"},
}

func loadTestPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := Load("testdata/roles.yaml")
	if err != nil {
		t.Fatalf("load testdata/roles.yaml: %v", err)
	}
	return p
}

// subject builds a subject the way the proxy does: base roles from the
// policy plus roles from approved grants.
func subject(p *Policy, user string, claims map[string][]string, grants ...string) Subject {
	roles := append(p.BaseRoles(user, claims), grants...)
	return Subject{User: user, Claims: claims, Roles: roles}
}

func TestDecide(t *testing.T) {
	p := loadTestPolicy(t)
	devOpts := Options{MaxSessionTTL: 8 * time.Hour, PortForwarding: true, AgentForwarding: true}
	tests := []struct {
		name    string
		user    string
		claims  map[string][]string
		grants  []string
		roles   []string // overrides computed roles when set
		login   string
		node    string
		allowed bool
		rule    string
		by      []string
		opts    Options
	}{
		{name: "dev on staging", user: "bob", login: "ubuntu", node: "web-1", allowed: true,
			rule: "role dev allows login ubuntu on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "list-valued label second value", user: "bob", login: "ubuntu", node: "dev-1", allowed: true,
			rule: "role dev allows login ubuntu on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "dev may not be root on prod; only relevant labels shown", user: "bob", login: "root", node: "db-1",
			rule: "no role allows login root on {env: prod}"},
		{name: "dev login not on prod", user: "bob", login: "ubuntu", node: "db-1",
			rule: "no role allows login ubuntu on {env: prod}"},
		{name: "username trait", user: "bob", login: "bob", node: "dev-1", allowed: true,
			rule: "role dev allows login bob on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "username trait is not someone else", user: "bob", login: "alice", node: "web-1",
			rule: "no role allows login alice on {env: staging}"},
		{name: "list claim trait first value", user: "bob", claims: map[string][]string{"unix_login": {"bsmith", "b-admin"}},
			login: "bsmith", node: "web-1", allowed: true, rule: "role dev allows login bsmith on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "list claim trait second value", user: "bob", claims: map[string][]string{"unix_login": {"bsmith", "b-admin"}},
			login: "b-admin", node: "web-1", allowed: true, rule: "role dev allows login b-admin on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "missing claim expands to nothing", user: "bob", login: "bsmith", node: "web-1",
			rule: "no role allows login bsmith on {env: staging}"},
		{name: "granted dba on data", user: "bob", grants: []string{"dba"}, login: "root", node: "db-1", allowed: true,
			rule: "role dba allows login root on {team: data}", by: []string{"dba"},
			opts: Options{MaxSessionTTL: 2 * time.Hour}},
		{name: "dba denied on pci", user: "bob", grants: []string{"dba"}, login: "postgres", node: "pci-1",
			rule: "role dba denies {env: pci}"},
		{name: "dba deny covers every role's allow", user: "dana", roles: []string{"dba", "pci-auditor"}, login: "auditor", node: "pci-1",
			rule: "role dba denies {env: pci}"},
		{name: "options only from allowing roles", user: "bob", grants: []string{"dba"}, login: "ubuntu", node: "web-1", allowed: true,
			rule: "role dev allows login ubuntu on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "several allowing roles: smallest ttl, false wins", user: "x", roles: []string{"dba", "admin"}, login: "root", node: "db-1", allowed: true,
			rule: "role admin allows login root on any node", by: []string{"admin", "dba"}, opts: Options{MaxSessionTTL: 2 * time.Hour}},
		{name: "not allowed by the roles held", user: "x", roles: []string{"oncall", "contractor"}, login: "postgres", node: "db-1",
			rule: "no role allows login postgres on {env: prod, team: data}"},
		{name: "merged options", user: "x", roles: []string{"oncall", "admin"}, login: "x", node: "web-prod-1", allowed: true,
			rule: "role admin allows login x on any node", by: []string{"admin"}, opts: Options{MaxSessionTTL: 4 * time.Hour, PortForwarding: true, AgentForwarding: true}},
		{name: "two roles allow; ttl is the smaller", user: "x", roles: []string{"oncall", "admin"}, login: "root", node: "web-prod-1", allowed: true,
			rule: "role admin allows login root on any node", by: []string{"admin", "oncall"}, opts: Options{MaxSessionTTL: 4 * time.Hour, PortForwarding: true, AgentForwarding: true}},
		{name: "oncall ubuntu on prod data", user: "olga", claims: map[string][]string{"groups": {"oncall"}}, login: "ubuntu", node: "db-1", allowed: true,
			rule: "role oncall allows login ubuntu on {env: prod}", by: []string{"oncall"}, opts: Options{MaxSessionTTL: 12 * time.Hour, PortForwarding: true, AgentForwarding: true}},
		{name: "oncall deny with logins and labels", user: "olga", claims: map[string][]string{"groups": {"oncall"}}, login: "root", node: "db-1",
			rule: "role oncall denies login root on {team: data}"},
		{name: "oncall deny does not reach other teams", user: "olga", claims: map[string][]string{"groups": {"oncall"}}, login: "root", node: "web-prod-1", allowed: true,
			rule: "role oncall allows login root on {env: prod}", by: []string{"oncall"}, opts: Options{MaxSessionTTL: 12 * time.Hour, PortForwarding: true, AgentForwarding: true}},
		{name: "deny beats an allow from a granted role", user: "olga", claims: map[string][]string{"groups": {"oncall"}}, grants: []string{"dba"}, login: "root", node: "db-1",
			rule: "role oncall denies login root on {team: data}"},
		{name: "contractor on web staging", user: "carol", login: "contractor", node: "web-1", allowed: true,
			rule: "role contractor allows login contractor on {env: staging, team: web}", by: []string{"contractor"},
			opts: Options{PortForwarding: true}},
		{name: "contractor denied on customer node by key-exists selector", user: "carol", login: "contractor", node: "cust-1",
			rule: "role contractor denies {customer: *}"},
		{name: "email local part trait and label glob", user: "erin@example.com", grants: []string{"prod-readonly"}, login: "ro-erin", node: "web-prod-1", allowed: true,
			rule: "role prod-readonly allows login ro-erin on {env: prod, tier: web-*}", by: []string{"prod-readonly"},
			opts: Options{MaxSessionTTL: time.Hour, PortForwarding: true, AgentForwarding: true}},
		{name: "label glob needs the label", user: "erin@example.com", grants: []string{"prod-readonly"}, login: "ro-erin", node: "db-1",
			rule: "no role allows login ro-erin on {env: prod}"},
		{name: "admin everywhere including unlabelled", user: "root-admin", login: "root", node: "bare", allowed: true,
			rule: "role admin allows login root on any node", by: []string{"admin"},
			opts: Options{MaxSessionTTL: 4 * time.Hour, PortForwarding: true, AgentForwarding: true}},
		{name: "admin root denied on pci", user: "root-admin", login: "root", node: "pci-1",
			rule: "role admin denies login root on {env: pci}"},
		{name: "admin own login on pci", user: "root-admin", login: "root-admin", node: "pci-1", allowed: true,
			rule: "role admin allows login root-admin on any node", by: []string{"admin"},
			opts: Options{MaxSessionTTL: 4 * time.Hour, PortForwarding: true, AgentForwarding: true}},
		{name: "star value needs the key", user: "deploy-bot", login: "deploy", node: "bare",
			rule: "no role allows login deploy on {}"},
		{name: "star value matches any value", user: "deploy-bot", login: "deploy", node: "pci-1", allowed: true,
			rule: "role automation allows login deploy on {env: *}", by: []string{"automation"},
			opts: Options{PortForwarding: true, AgentForwarding: true}},
		{name: "quarantine denies every node", user: "mallory", login: "ubuntu", node: "web-1",
			rule: "role quarantine denies any node"},
		{name: "claim glob maps to roles", user: "gus", claims: map[string][]string{"groups": {"staff", "eng-platform"}}, login: "ubuntu", node: "web-1", allowed: true,
			rule: "role dev allows login ubuntu on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "claim glob does not match prefix only", user: "gus", claims: map[string][]string{"groups": {"engineering"}}, login: "ubuntu", node: "web-1",
			rule: "no role allows login ubuntu on {env: staging, team: web}"},
		{name: "no roles at all", user: "nobody", login: "ubuntu", node: "web-1",
			rule: "no role allows login ubuntu on {env: staging, team: web}"},
		{name: "invalid login", user: "bob", login: "root;id", node: "web-1",
			rule: `login "root;id" is not a valid login name`},
		{name: "empty login", user: "bob", login: "", node: "web-1",
			rule: `login "" is not a valid login name`},
		{name: "deleted role in a grant is ignored", user: "bob", grants: []string{"gone"}, login: "ubuntu", node: "web-1", allowed: true,
			rule: "role dev allows login ubuntu on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
		{name: "duplicate roles counted once", user: "bob", roles: []string{"dev", "dev"}, login: "ubuntu", node: "web-1", allowed: true,
			rule: "role dev allows login ubuntu on {env: [staging, dev]}", by: []string{"dev"}, opts: devOpts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := subject(p, tc.user, tc.claims, tc.grants...)
			if tc.roles != nil {
				s.Roles = tc.roles
			}
			n, ok := testNodes[tc.node]
			if !ok {
				t.Fatalf("no test node %q", tc.node)
			}
			d := p.Decide(s, tc.login, n)
			if d.Allowed != tc.allowed || d.Rule != tc.rule {
				t.Fatalf("Decide(%v, %q, %s) = %v %q, want %v %q", s.Roles, tc.login, tc.node, d.Allowed, d.Rule, tc.allowed, tc.rule)
			}
			if !slices.Equal(d.Roles, tc.by) {
				t.Errorf("Roles = %v, want %v", d.Roles, tc.by)
			}
			if d.Options != tc.opts {
				t.Errorf("Options = %+v, want %+v", d.Options, tc.opts)
			}
		})
	}
}

// A refusal must not name roles the subject does not hold or other nodes.
func TestDecideRuleDoesNotLeak(t *testing.T) {
	p := loadTestPolicy(t)
	s := subject(p, "bob", nil)
	for name, n := range testNodes {
		d := p.Decide(s, "root", n)
		if d.Allowed {
			t.Fatalf("bob allowed root on %s", name)
		}
		for _, other := range p.RoleNames() {
			if other != "dev" && strings.Contains(d.Rule, "role "+other) {
				t.Errorf("rule %q names role %s that bob does not hold", d.Rule, other)
			}
		}
		for other := range testNodes {
			if strings.Contains(d.Rule, other) {
				t.Errorf("rule %q names node %s", d.Rule, other)
			}
		}
	}
}

func TestBaseRoles(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		user   string
		claims map[string][]string
		want   []string
	}{
		{"bob", nil, []string{"dev"}},
		{"alice", nil, []string{"approver", "dev"}},
		{"stranger", nil, []string{}},
		{"stranger", map[string][]string{"groups": {"engineers"}}, []string{"dev"}},
		{"stranger", map[string][]string{"groups": {"eng-data", "engineers"}}, []string{"dev", "viewer"}},
		{"stranger", map[string][]string{"groups": {"security", "dbas"}}, []string{"dba", "security"}},
		{"stranger", map[string][]string{"department": {"finance"}}, []string{"employee"}},
		{"stranger", map[string][]string{"groups": {"eng"}}, []string{}},
		{"stranger", map[string][]string{"team": {"engineers"}}, []string{}},
		{"bob", map[string][]string{"groups": {"engineers", "oncall"}}, []string{"dev", "oncall"}},
	}
	for _, tc := range tests {
		got := p.BaseRoles(tc.user, tc.claims)
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("BaseRoles(%s, %v) = %v, want %v", tc.user, tc.claims, got, tc.want)
		}
	}
}

func TestLogins(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		name   string
		user   string
		claims map[string][]string
		grants []string
		node   string
		want   []string
	}{
		{"dev with traits", "bob", map[string][]string{"unix_login": {"bsmith", "bad name", ""}}, nil, "web-1", []string{"bob", "bsmith", "ubuntu"}},
		{"dev on prod", "bob", nil, nil, "db-1", []string{}},
		{"oncall root denied on data", "olga", map[string][]string{"groups": {"oncall"}}, nil, "db-1", []string{"ubuntu"}},
		{"oncall plus dba", "olga", map[string][]string{"groups": {"oncall"}}, []string{"dba"}, "db-1", []string{"postgres", "ubuntu"}},
		{"dba on pci", "bob", nil, []string{"dba"}, "pci-1", []string{}},
		{"email local", "erin@example.com", nil, []string{"prod-readonly"}, "web-prod-1", []string{"ro-erin"}},
		{"email username kept as is", "erin@example.com", nil, []string{"dev"}, "web-1", []string{"erin@example.com", "ubuntu"}},
		{"username that is not a valid login is dropped", "erin smith", nil, []string{"dev"}, "web-1", []string{"ubuntu"}},
		{"quarantine", "mallory", nil, nil, "web-1", []string{}},
		{"admin on pci", "root-admin", nil, nil, "pci-1", []string{"root-admin"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := subject(p, tc.user, tc.claims, tc.grants...)
			got := p.Logins(s, testNodes[tc.node])
			if got == nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Logins = %#v, want %#v", got, tc.want)
			}
			// Every listed login must also be allowed by Decide.
			for _, l := range got {
				if d := p.Decide(s, l, testNodes[tc.node]); !d.Allowed {
					t.Errorf("Logins lists %s but Decide refuses: %s", l, d.Rule)
				}
			}
		})
	}
}

func TestRequestable(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		name       string
		user       string
		claims     map[string][]string
		roles      []string
		wantRoles  []string
		wantMax    time.Duration
		wantReason bool
	}{
		{"dev", "bob", nil, nil, []string{"dba", "prod-readonly"}, 4 * time.Hour, true},
		{"employee", "e", map[string][]string{"department": {"ops"}}, nil, []string{"prod-readonly"}, 30 * time.Minute, false},
		{"oncall and dev", "o", nil, []string{"oncall", "dev"}, []string{"dba", "prod-readonly"}, 8 * time.Hour, true},
		{"quarantined", "mallory", nil, nil, []string{}, 0, false},
		{"nothing", "sam", nil, nil, []string{}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := subject(p, tc.user, tc.claims)
			if tc.roles != nil {
				s.Roles = tc.roles
			}
			roles, maxD, reason := p.Requestable(s)
			if !slices.Equal(roles, tc.wantRoles) || maxD != tc.wantMax || reason != tc.wantReason {
				t.Fatalf("Requestable = %v %v %v, want %v %v %v", roles, maxD, reason, tc.wantRoles, tc.wantMax, tc.wantReason)
			}
		})
	}
}

func TestCheckRequest(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		name    string
		roles   []string // subject roles
		req     []string
		d       time.Duration
		reason  string
		wantErr string // "" = accepted
	}{
		{"dev asks dba", []string{"dev"}, []string{"dba"}, 2 * time.Hour, "incident 42", ""},
		{"at the maximum", []string{"dev"}, []string{"dba"}, 4 * time.Hour, "incident 42", ""},
		{"zero means default", []string{"dev"}, []string{"dba"}, 0, "incident 42", ""},
		{"too long", []string{"dev"}, []string{"dba"}, 5 * time.Hour, "incident 42", "duration 5h exceeds the maximum 4h"},
		{"too long with minutes", []string{"employee"}, []string{"prod-readonly"}, 90 * time.Minute, "", "duration 1h30m exceeds the maximum 30m"},
		{"reason missing", []string{"dev"}, []string{"dba"}, time.Hour, "  ", "a reason is required"},
		{"not requestable", []string{"dev"}, []string{"admin"}, time.Hour, "x", "role admin is not requestable by you"},
		{"unknown role looks the same", []string{"dev"}, []string{"nosuch"}, time.Hour, "x", "role nosuch is not requestable by you"},
		{"one of two not requestable", []string{"dev"}, []string{"dba", "security"}, time.Hour, "x", "role security is not requestable by you"},
		{"oncall needs no reason", []string{"oncall"}, []string{"dba"}, 8 * time.Hour, "", ""},
		{"oncall and dev: any role requiring a reason wins", []string{"oncall", "dev"}, []string{"dba"}, 8 * time.Hour, "", "a reason is required"},
		{"oncall and dev: largest max", []string{"oncall", "dev"}, []string{"dba"}, 8 * time.Hour, "pager", ""},
		{"multi-role request takes the smaller max", []string{"oncall", "dev"}, []string{"dba", "prod-readonly"}, 5 * time.Hour, "pager", "duration 5h exceeds the maximum 4h"},
		{"quarantine denies requesting", []string{"dev", "quarantine"}, []string{"dba"}, time.Hour, "x", "role dba is not requestable by you"},
		{"nothing requested", []string{"dev"}, nil, time.Hour, "x", "no roles requested"},
		{"negative", []string{"dev"}, []string{"dba"}, -time.Hour, "x", "duration -1h is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.CheckRequest(Subject{User: "u", Roles: tc.roles}, tc.req, tc.d, tc.reason)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckRequest: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasSuffix(err.Error(), ": "+tc.wantErr) || !errors.Is(err, ErrRequestRefused) {
				t.Fatalf("CheckRequest error = %v, want ...%q wrapping ErrRequestRefused", err, tc.wantErr)
			}
		})
	}
}

func TestMaxRequestDuration(t *testing.T) {
	p := loadTestPolicy(t)
	s := Subject{User: "o", Roles: []string{"oncall", "dev"}}
	if d, ok := p.MaxRequestDuration(s, []string{"dba"}); !ok || d != 8*time.Hour {
		t.Errorf("dba: %v %v, want 8h true", d, ok)
	}
	if d, ok := p.MaxRequestDuration(s, []string{"dba", "prod-readonly"}); !ok || d != 4*time.Hour {
		t.Errorf("dba+prod-readonly: %v %v, want 4h true", d, ok)
	}
	if _, ok := p.MaxRequestDuration(s, []string{"admin"}); ok {
		t.Error("admin: ok, want not requestable")
	}
}

func TestDefaultRequestDuration(t *testing.T) {
	p := loadTestPolicy(t)
	for _, tc := range []struct {
		name  string
		roles []string
		ask   []string
		want  time.Duration
		ok    bool
	}{
		{"the role's default_duration", []string{"oncall"}, []string{"dba"}, 2 * time.Hour, true},
		{"unset: 1h under a longer max", []string{"dev"}, []string{"dba"}, time.Hour, true},
		{"unset: the max when shorter than 1h", []string{"employee"}, []string{"prod-readonly"}, 30 * time.Minute, true},
		{"the smallest default of the roles that allow it", []string{"oncall", "dev"}, []string{"dba"}, time.Hour, true},
		{"another role's shorter default counts", []string{"dev", "employee"}, []string{"prod-readonly"}, 30 * time.Minute, true},
		{"a role that allows nothing asked does not count", []string{"oncall", "employee"}, []string{"dba"}, 2 * time.Hour, true},
		{"several roles asked: the smallest", []string{"oncall", "dev"}, []string{"dba", "prod-readonly"}, time.Hour, true},
		{"not requestable", []string{"oncall"}, []string{"admin"}, 0, false},
		{"nothing asked", []string{"oncall"}, nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := p.DefaultRequestDuration(Subject{User: "o", Roles: tc.roles}, tc.ask)
			if d != tc.want || ok != tc.ok {
				t.Errorf("DefaultRequestDuration(%v) = %v %v, want %v %v", tc.ask, d, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestReviewThreshold(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		name               string
		roles              []string
		requested          []string
		approvals, denials int
		ok                 bool
	}{
		{"approver reviews dba", []string{"dev", "approver"}, []string{"dba"}, 1, 1, true},
		{"security needs two approvals", []string{"security"}, []string{"dba"}, 2, 1, true},
		{"security may not review prod-readonly", []string{"security"}, []string{"prod-readonly"}, 0, 0, false},
		{"security may not review one of two", []string{"security"}, []string{"dba", "prod-readonly"}, 0, 0, false},
		{"approver reviews both", []string{"approver"}, []string{"dba", "prod-readonly"}, 1, 1, true},
		{"highest threshold of relevant rules", []string{"approver", "security"}, []string{"dba"}, 2, 1, true},
		{"only relevant rules count", []string{"approver", "security"}, []string{"prod-readonly"}, 1, 1, true},
		{"dev reviews nothing", []string{"dev"}, []string{"dba"}, 0, 0, false},
		{"empty request", []string{"approver"}, nil, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, d, ok := p.ReviewThreshold(Subject{User: "r", Roles: tc.roles}, tc.requested)
			if a != tc.approvals || d != tc.denials || ok != tc.ok {
				t.Fatalf("ReviewThreshold = %d %d %v, want %d %d %v", a, d, ok, tc.approvals, tc.denials, tc.ok)
			}
		})
	}
	if got := p.Reviewable(Subject{Roles: []string{"approver", "security"}}); !slices.Equal(got, []string{"dba", "prod-readonly"}) {
		t.Errorf("Reviewable = %v", got)
	}
}

func TestCan(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		user       string
		area, verb string
		want       bool
	}{
		{"sam", AreaSessions, VerbList, true},
		{"sam", AreaSessions, VerbPlay, true},
		{"sam", AreaSessions, VerbJoin, true},
		{"sam", AreaSessions, VerbTerminate, true},
		{"sam", AreaAudit, VerbRead, true},
		{"sam", AreaLocks, VerbManage, true},
		{"bob", AreaSessions, VerbList, false},
		{"bob", AreaAudit, VerbRead, false},
		{"bob", AreaLocks, VerbManage, false},
		{"deploy-bot", AreaSessions, VerbList, true},
		{"deploy-bot", AreaSessions, VerbTerminate, false}, // no-terminate denies what automation allows
		{"root-admin", AreaSessions, VerbJoin, true},
		{"root-admin", AreaLocks, VerbManage, false},
		{"sam", AreaSessions, "delete", false},
		{"sam", "nodes", VerbList, false},
		{"sam", AreaAudit, VerbManage, false},
	}
	for _, tc := range tests {
		s := subject(p, tc.user, nil)
		if got := p.Can(s, tc.area, tc.verb); got != tc.want {
			t.Errorf("Can(%s, %s, %s) = %v, want %v", tc.user, tc.area, tc.verb, got, tc.want)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "anything/at all", true},
		{"eng-*", "eng-platform", true},
		{"eng-*", "eng-", true},
		{"eng-*", "engineering", false},
		{"*-prod", "eu-prod", true},
		{"*-prod", "eu-prod-2", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"org/*", "org/team", true},
		{"a*", "a*b", true},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	}
	for _, tc := range tests {
		if got := glob(tc.pattern, tc.name); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		4 * time.Hour:    "4h",
		90 * time.Minute: "1h30m",
		30 * time.Minute: "30m",
		90 * time.Second: "1m30s",
		0:                "0s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestReviewReasonRequired(t *testing.T) {
	p, err := Parse("roles.yaml", []byte(`roles:
  - name: dba
    options: {review_reason_required: true, max_session_ttl: 1h}
  - name: readonly
    options: {review_reason_required: false}
  - name: web
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		roles []string
		role  string
		want  bool
	}{
		{[]string{"dba"}, "dba", true},
		{[]string{"web", "dba"}, "dba", true},
		{[]string{"readonly", "web"}, "", false},
		{[]string{"gone"}, "", false},
		{nil, "", false},
	}
	for _, tc := range tests {
		if role, ok := p.ReviewReasonRequired(tc.roles); ok != tc.want || role != tc.role {
			t.Errorf("ReviewReasonRequired(%v) = %q %v, want %q %v", tc.roles, role, ok, tc.role, tc.want)
		}
	}
	// A role asked for is not a session option: it changes no decision.
	s := Subject{User: "x", Roles: []string{"dba"}}
	if d := p.Decide(s, "root", Node{Name: "n"}); d.Allowed {
		t.Errorf("dba allows nothing, got %+v", d)
	}
}
