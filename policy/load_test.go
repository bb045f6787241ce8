package policy

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		msg  string // substring of the message
	}{
		{"unknown role in users", `roles:
  - name: dev
users:
  - {name: bob, roles: [dev, dab]}
`, 4, `users entry bob roles refers to unknown role "dab"`},
		{"unknown role in claims_to_roles", `claims_to_roles:
  - claim: groups
    value: eng
    roles:
      - ops
roles:
  - name: dev
`, 5, `claims_to_roles roles refers to unknown role "ops"`},
		{"unknown role in request.roles", `roles:
  - name: dev
    allow:
      request:
        roles: [dba]
`, 5, `role dev allow request roles refers to unknown role "dba"`},
		{"unknown role in review_requests.roles", `roles:
  - name: dev
  - name: approver
    allow:
      review_requests: {roles: [dev, dbx]}
`, 5, `refers to unknown role "dbx"`},
		{"unknown role in deny request", `roles:
  - name: q
    deny:
      request: {roles: [nope]}
`, 4, `role q deny request roles refers to unknown role "nope"`},
		{"selector is a list", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: [env, staging]
`, 5, "must be a mapping of label to value"},
		{"selector is empty", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {}
`, 5, "is empty; use {'*': '*'}"},
		{"selector nested mapping", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels:
        env:
          staging: true
`, 7, `label "env" must have a value or a list of values`},
		{"selector star key with value", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {"*": prod}
`, 5, "the label key '*' only goes with the value '*'"},
		{"selector empty value", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: ""}
`, 5, `label "env": values must be non-empty strings`},
		{"selector empty list", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: []}
`, 5, `label "env" has an empty list of values`},
		{"selector null value", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels:
        env:
`, 6, `label "env": values must be non-empty strings`},
		{"selector duplicate label", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels:
        env: a
        env: b
`, 7, `duplicate label "env"`},
		{"duplicate role", `roles:
  - name: dev
  - name: ops
  - name: dev
`, 4, `duplicate role "dev" (first defined on line 2)`},
		{"bad duration", `roles:
  - name: dba
    options:
      max_session_ttl: 2 hours
`, 4, `bad duration "2 hours" for role dba options max_session_ttl`},
		{"negative duration", `roles:
  - name: dba
  - name: dev
    allow:
      request:
        roles: [dba]
        max_duration: -4h
`, 7, `bad duration "-4h"`},
		{"review reason not a boolean", `roles:
  - name: dba
    options:
      review_reason_required: always
`, 4, `role dba options review_reason_required must be true or false`},
		{"review reason on the requesting side", `roles:
  - name: dba
  - name: dev
    allow:
      request:
        roles: [dba]
        review_reason_required: true
`, 7, `review_reason_required is not a key of role dev allow request: it is an option of the role being requested`},
		{"duration as number", `roles:
  - name: dba
    options:
      max_session_ttl: 7200
`, 4, "must be a duration like 90s"},
		{"zero max_duration", `roles:
  - name: dba
  - name: dev
    allow:
      request: {roles: [dba], max_duration: 0s}
`, 5, "max_duration must be more than 0"},
		{"zero default_duration", `roles:
  - name: dba
  - name: dev
    allow:
      request: {roles: [dba], max_duration: 4h, default_duration: 0s}
`, 5, "role dev allow request default_duration must be more than 0"},
		{"default_duration above max_duration", `roles:
  - name: dba
  - name: dev
    allow:
      request: {roles: [dba], max_duration: 4h, default_duration: 5h}
`, 5, "role dev allow request default_duration 5h is above its max_duration 4h"},
		{"default_duration above the unset max_duration", `roles:
  - name: dba
  - name: dev
    allow:
      request: {roles: [dba], default_duration: 2h}
`, 5, "role dev allow request default_duration 2h is above its max_duration 1h"},
		{"deny request cannot set default_duration", `roles:
  - name: dba
  - name: q
    deny:
      request: {roles: [dba], default_duration: 1h}
`, 5, `unknown key "default_duration" in role q deny request`},
		{"unknown top-level key", `roles:
  - name: dev
role_mappings: []
`, 3, `unknown key "role_mappings" in the roles file`},
		{"unknown role key", `roles:
  - name: dev
    alow:
      logins: [ubuntu]
`, 3, `unknown key "alow" in a role`},
		{"unknown allow key", `roles:
  - name: dev
    allow:
      login: [ubuntu]
`, 4, `unknown key "login" in role dev allow`},
		{"unknown option", `roles:
  - name: dev
    options:
      x11_forwarding: false
`, 4, `unknown key "x11_forwarding" in role dev options`},
		{"deny request cannot set max_duration", `roles:
  - name: dba
  - name: q
    deny:
      request: {roles: [dba], max_duration: 1h}
`, 5, `unknown key "max_duration" in role q deny request`},
		{"duplicate key", `roles:
  - name: dev
    allow:
      logins: [ubuntu]
      logins: [root]
`, 5, `duplicate key "logins" in role dev allow`},
		{"merge key", `base: &b
  logins: [x]
`, 1, `unknown key "base"`},
		{"merge key inside role", `roles:
  - name: dev
    allow:
      <<: {logins: [x]}
`, 4, "merge keys (<<) are not supported"},
		{"bad login", `roles:
  - name: dev
    allow:
      logins: [ubuntu, "root admin"]
`, 4, `login "root admin" is not a valid login name`},
		{"unknown trait", `roles:
  - name: dev
    allow:
      logins: ["{{external.unix}}"]
`, 4, `unknown trait {{external.unix}}`},
		{"unclosed trait", `roles:
  - name: dev
    allow:
      logins: ["{{username"]
`, 4, "unclosed {{"},
		{"two traits", `roles:
  - name: dev
    allow:
      logins: ["{{username}}-{{claims.x}}"]
`, 4, "only one {{...}} expression"},
		{"bad permission", `roles:
  - name: sec
    allow:
      sessions: [list, kill]
`, 4, `unknown sessions permission "kill"`},
		{"approvals zero", `roles:
  - name: dba
  - name: sec
    allow:
      review_requests:
        roles: [dba]
        approvals: 0
`, 7, "approvals must be a whole number from 1 to 1000"},
		{"bool as string", `roles:
  - name: dba
    options:
      port_forwarding: "no"
`, 4, "port_forwarding must be true or false"},
		{"role without name", `roles:
  - allow:
      logins: [x]
`, 2, "role has no name"},
		{"bad role name", `roles:
  - name: "db a"
`, 2, `role name "db a" may contain only`},
		{"empty deny logins", `roles:
  - name: dev
    deny:
      logins: []
`, 4, "remove the key to deny every login"},
		{"roles not a list", `roles:
  name: dev
`, 2, "roles must be a list of roles"},
		{"logins not a list", `roles:
  - name: dev
    allow:
      logins: ubuntu
`, 4, "logins must be a list"},
		{"duplicate user", `roles:
  - name: dev
users:
  - {name: bob, roles: [dev]}
  - {name: bob, roles: [dev]}
`, 5, `duplicate users entry for "bob"`},
		{"claims mapping missing roles", `roles:
  - name: dev
claims_to_roles:
  - {claim: groups, value: eng}
`, 4, "claims_to_roles entry needs roles"},
		{"yaml syntax error", `roles:
  - name: dev
    allow:
      logins: [ubuntu
`, 3, "did not find expected ',' or ']'"},
		{"tab indentation", "roles:\n\t- name: dev\n", 2, "YAML does not allow tabs"},
		{"empty file", "", 1, "roles file is empty"},
		{"only comments", "# nothing yet\n", 1, "roles file is empty"},
		{"two documents", "roles: []\n---\nroles: []\n", 2, "only one YAML document"},
		{"top level is a list", "- name: dev\n", 1, "the roles file must be a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("roles.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded (%d roles), want error", len(p.names))
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *policy.Error", err, err)
			}
			if pe.File != "roles.yaml" || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
				t.Fatalf("error = %q (line %d), want line %d containing %q", err, pe.Line, tc.line, tc.msg)
			}
			if prefix := "roles.yaml:" + strconv.Itoa(tc.line) + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestParseAcceptsAnchorsAndNulls(t *testing.T) {
	src := `roles:
  - name: dev
    allow:
      logins: &logins [ubuntu, "{{ username }}"]
      node_labels: &staging {env: staging, tier: 1}
    deny:
  - name: dev2
    allow:
      logins: *logins
      node_labels: *staging
    options:
users:
claims_to_roles:
`
	p, err := Parse("roles.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	n := Node{Name: "w", Labels: map[string]string{"env": "staging", "tier": "1"}}
	for _, r := range []string{"dev", "dev2"} {
		if d := p.Decide(Subject{User: "bob", Roles: []string{r}}, "bob", n); !d.Allowed {
			t.Errorf("%s: %s", r, d.Rule)
		}
	}
}

func TestLoadFiles(t *testing.T) {
	for _, path := range []string{"testdata/roles.yaml", "../configs/roles.yaml"} {
		p, err := Load(path)
		if err != nil {
			t.Fatalf("Load(%s): %v", path, err)
		}
		if p.Source() != path || len(p.Digest()) != 64 || len(p.RoleNames()) == 0 {
			t.Errorf("Load(%s): source %q digest %q roles %v", path, p.Source(), p.Digest(), p.RoleNames())
		}
	}
	if _, err := Load("testdata/missing.yaml"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want a wrapped not-exist error", err)
	}
}

// The demo roles must give the demo accounts exactly the parts PRODUCT.md
// describes.
func TestDemoRoles(t *testing.T) {
	p, err := Load("../configs/roles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	db1 := Node{Name: "db-1", Labels: map[string]string{"env": "prod", "team": "data"}}
	web1 := Node{Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}}
	bob := Subject{User: "bob", Roles: p.BaseRoles("bob", nil)}
	if d := p.Decide(bob, "root", db1); d.Allowed || d.Rule != "no role allows login root on {env: prod}" {
		t.Errorf("bob root@db-1: %v %q", d.Allowed, d.Rule)
	}
	if d := p.Decide(bob, "ubuntu", web1); !d.Allowed {
		t.Errorf("bob ubuntu@web-1: %s", d.Rule)
	}
	if d := p.Decide(bob, "bob", web1); !d.Allowed {
		t.Errorf("bob bob@web-1: %s", d.Rule)
	}
	if err := p.CheckRequest(bob, []string{"dba"}, 0, "incident"); err != nil {
		t.Errorf("bob request dba: %v", err)
	}
	if err := p.CheckRequest(bob, []string{"dba"}, 0, ""); err == nil {
		t.Error("bob request dba without reason accepted")
	}
	bob.Roles = append(bob.Roles, "dba")
	if d := p.Decide(bob, "root", db1); !d.Allowed {
		t.Errorf("bob+dba root@db-1: %s", d.Rule)
	}
	alice := Subject{User: "alice", Roles: p.BaseRoles("alice", nil)}
	if a, _, ok := p.ReviewThreshold(alice, []string{"dba"}); !ok || a != 1 {
		t.Errorf("alice review dba: %d %v", a, ok)
	}
	sam := Subject{User: "sam", Roles: p.BaseRoles("sam", nil)}
	for _, c := range [][2]string{{"sessions", "list"}, {"sessions", "play"}, {"sessions", "join"}, {"sessions", "terminate"}, {"audit", "read"}, {"locks", "manage"}} {
		if !p.Can(sam, c[0], c[1]) {
			t.Errorf("sam cannot %s %s", c[0], c[1])
		}
		if p.Can(bob, c[0], c[1]) {
			t.Errorf("bob can %s %s", c[0], c[1])
		}
	}
}
