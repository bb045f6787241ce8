package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// A one-login grant allows exactly that login on that node, with its role's
// options, and adds no role: its role's own deny and every deny of the
// user's roles still win.
func TestResourceGrantDecide(t *testing.T) {
	p, err := Parse("resource.yaml", []byte(`
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba]}
    deny:
      node_labels: {env: pci}
  - name: dba
    allow:
      logins: [postgres, root]
      node_labels: {team: data}
    deny:
      logins: [root]
      node_labels: {env: prod}
    options: {max_session_ttl: 30m, port_forwarding: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	db1 := Node{Name: "db-1", Labels: map[string]string{"team": "data", "env": "prod"}}
	db2 := Node{Name: "db-2", Labels: map[string]string{"team": "data", "env": "prod"}}
	pci := Node{Name: "db-9", Labels: map[string]string{"team": "data", "env": "pci"}}
	s := Subject{User: "bob", Roles: []string{"dev"}, Resources: []Resource{
		{ID: "r-pg", Role: "dba", Login: "postgres", Node: "db-1"},
		{ID: "r-root", Role: "dba", Login: "root", Node: "db-1"},
		{ID: "r-pci", Role: "dba", Login: "postgres", Node: "db-9"},
	}}

	d := p.Decide(s, "postgres", db1)
	if !d.Allowed || !slices.Equal(d.Grants, []string{"r-pg"}) || d.Rule != "a resource grant of role dba allows login postgres on db-1" {
		t.Fatalf("postgres on db-1: %+v", d)
	}
	if d.Options.MaxSessionTTL != 30*time.Minute || d.Options.PortForwarding {
		t.Errorf("options of the grant's role not applied: %+v", d.Options)
	}
	for _, c := range []struct {
		login string
		n     Node
		why   string
	}{
		{"postgres", db2, "another node"},
		{"root", db1, "the role's own deny"},
		{"postgres", pci, "a deny of a role the user holds"},
		{"ubuntu", db1, "another login"},
	} {
		if d := p.Decide(s, c.login, c.n); d.Allowed {
			t.Errorf("%s on %s allowed despite %s: %+v", c.login, c.n.Name, c.why, d)
		}
	}
	if got := p.Logins(s, db1); !slices.Equal(got, []string{"postgres"}) {
		t.Errorf("Logins on db-1 = %v, want the granted login only", got)
	}
	if got := p.ResourceRoles(s, "root", db1); len(got) != 0 {
		t.Errorf("ResourceRoles(root on db-1) = %v: dba's own deny takes it away", got)
	}
	if got := p.ResourceRoles(s, "postgres", db1); !slices.Equal(got, []string{"dba"}) {
		t.Errorf("ResourceRoles(postgres on db-1) = %v, want dba", got)
	}
}

// A label-selector grant allows its login on every node whose labels hold
// all its pairs, and only there; it is requestable only through a role that
// allows the login on every node the selector matches now, and a deny of a
// role the user holds still wins on a matching node.
func TestSelectorGrant(t *testing.T) {
	p, err := Parse("selector.yaml", []byte(`
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba, ops]}
    deny:
      logins: [postgres]
      node_labels: {env: pci}
  - name: dba
    allow:
      logins: [postgres, root]
      node_labels: {team: db}
    deny:
      logins: [root]
      node_labels: {env: prod}
  - name: ops
    allow:
      logins: [postgres]
      node_labels: {'*': '*'}
  - name: viewer
    allow:
      logins: [postgres]
      node_labels: {team: db}
`))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []Node{
		{Name: "db-1", Labels: map[string]string{"env": "staging", "team": "db"}},
		{Name: "db-2", Labels: map[string]string{"env": "staging", "team": "db", "zone": "b"}},
		{Name: "db-3", Labels: map[string]string{"env": "prod", "team": "db"}},
		{Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}},
		{Name: "db-9", Labels: map[string]string{"env": "pci", "team": "db"}},
	}
	dev := Subject{User: "bob", Roles: []string{"dev"}}

	for _, c := range []struct {
		name        string
		login       string
		sel         map[string]string
		wantRoles   []string
		wantMatched []string
	}{
		{"all matching nodes allowed by both", "postgres", map[string]string{"env": "staging", "team": "db"}, []string{"dba", "ops"}, []string{"db-1", "db-2"}},
		{"one pair narrows", "postgres", map[string]string{"zone": "b"}, []string{"dba", "ops"}, []string{"db-2"}},
		{"a matching node outside dba's labels", "postgres", map[string]string{"env": "staging"}, []string{"ops"}, []string{"db-1", "db-2", "web-1"}},
		{"dba's own deny on one matching node", "root", map[string]string{"team": "db"}, nil, []string{"db-1", "db-2", "db-3", "db-9"}},
		{"no role allows the login anywhere", "ubuntu", map[string]string{"team": "db", "env": "staging"}, nil, []string{"db-1", "db-2"}},
		{"matches no node", "postgres", map[string]string{"env": "nowhere"}, nil, nil},
		{"empty selector matches no node", "postgres", map[string]string{}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			roles, matched := p.SelectorRoles(dev, c.login, c.sel, nodes)
			if !slices.Equal(roles, c.wantRoles) || !slices.Equal(matched, c.wantMatched) {
				t.Errorf("SelectorRoles(%s, %v) = %v on %v; want %v on %v", c.login, c.sel, roles, matched, c.wantRoles, c.wantMatched)
			}
		})
	}
	// viewer allows the login but is not requestable by dev.
	if roles, _ := p.SelectorRoles(Subject{User: "bob"}, "postgres", map[string]string{"team": "db"}, nodes); roles != nil {
		t.Errorf("SelectorRoles without a requesting role = %v", roles)
	}

	s := dev
	s.Resources = []Resource{{ID: "r-sel", Role: "dba", Login: "postgres", Labels: map[string]string{"team": "db", "env": "staging"}}}
	for _, c := range []struct {
		login string
		node  Node
		allow bool
		why   string
	}{
		{"postgres", nodes[0], true, "matches both pairs"},
		{"postgres", nodes[1], true, "matches both pairs, with a label more"},
		{"postgres", Node{Name: "db-new", Labels: map[string]string{"env": "staging", "team": "db"}}, true, "a node labelled so after the request"},
		{"postgres", nodes[2], false, "env differs"},
		{"postgres", nodes[3], false, "team differs"},
		{"postgres", Node{Name: "db-1"}, false, "the name of a matching node without its labels"},
		{"root", nodes[0], false, "another login"},
	} {
		d := p.Decide(s, c.login, c.node)
		if d.Allowed != c.allow {
			t.Errorf("%s on %s (%s): allowed %v, want %v: %+v", c.login, c.node.Name, c.why, d.Allowed, c.allow, d)
		}
		if c.allow && (!slices.Equal(d.Grants, []string{"r-sel"}) || d.Rule != "a resource grant of role dba allows login postgres on "+c.node.Name) {
			t.Errorf("%s on %s: %+v", c.login, c.node.Name, d)
		}
	}

	// Deny wins: dev denies postgres on env: pci, so a grant whose selector
	// matches db-9 (team: db) still does not open it.
	wide := dev
	wide.Resources = []Resource{{ID: "r-wide", Role: "ops", Login: "postgres", Labels: map[string]string{"team": "db"}}}
	if d := p.Decide(wide, "postgres", nodes[4]); d.Allowed {
		t.Errorf("postgres on db-9 allowed despite dev's deny: %+v", d)
	}
	if d := p.Decide(wide, "postgres", nodes[2]); !d.Allowed {
		t.Errorf("postgres on db-3 through ops refused: %+v", d)
	}
	// A grant that names neither a node nor labels covers nothing.
	if (Resource{Role: "ops", Login: "postgres"}).Covers(nodes[0]) {
		t.Error("an empty resource grant covers a node")
	}
}

func TestParseLabels(t *testing.T) {
	for _, c := range []struct {
		in   string
		want map[string]string
	}{
		{"env=staging", map[string]string{"env": "staging"}},
		{" env=staging , team=db ", map[string]string{"env": "staging", "team": "db"}},
		{"k8s.io/role=db:primary", map[string]string{"k8s.io/role": "db:primary"}},
	} {
		got, err := ParseLabels(c.in)
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("ParseLabels(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	var pairs []string
	for i := range maxSelectorPairs + 1 {
		pairs = append(pairs, fmt.Sprintf("k%d=v", i))
	}
	seventeen := strings.Join(pairs, ",")
	for _, bad := range []string{"", "env", "env=", "=staging", "env=staging,", "env=a,env=b", "env=st*", "env=a b", "env=a=b", "env=\x1b[2J",
		strings.Repeat("k", 129) + "=v", seventeen} {
		if got, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) = %v, want an error", bad, got)
		}
	}
}
