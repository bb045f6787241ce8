package policy

import (
	"slices"
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
