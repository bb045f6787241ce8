package policy

import (
	"fmt"
	"strings"
	"testing"
)

// benchPolicy builds a roles file with n roles, each allowing two logins on
// one team's prod and staging nodes, every tenth also denying pci nodes,
// parsed by the real loader.
func benchPolicy(tb testing.TB, n int) *Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString("roles:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: role-%d\n    allow:\n      logins: [u%d, \"{{username}}\", \"{{claims.unix_login}}\"]\n", i, i%10)
		fmt.Fprintf(&b, "      node_labels: {team: t%d, env: [prod, staging], zone: \"eu-*\"}\n", i%50)
		if i%10 == 0 {
			b.WriteString("    deny:\n      node_labels: {pci: \"yes\"}\n")
		}
		fmt.Fprintf(&b, "    options:\n      max_session_ttl: %dh\n", 1+i%8)
	}
	p, err := Parse("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func benchNodes(n int) []Node {
	envs := []string{"prod", "staging", "dev"}
	nodes := make([]Node, n)
	for i := range nodes {
		labels := map[string]string{
			"env":  envs[i%3],
			"team": fmt.Sprintf("t%d", i%50),
			"zone": fmt.Sprintf("eu-%d", i%4),
			"host": fmt.Sprintf("h%d", i),
		}
		if i%7 == 0 {
			labels["pci"] = "yes"
		}
		nodes[i] = Node{Name: fmt.Sprintf("node-%d", i), Labels: labels}
	}
	return nodes
}

// BenchmarkDecide measures one decision for a user holding four of 1,000
// roles against one node drawn in turn from 100, 1,000 and 10,000 labelled
// nodes. Decisions are allowed, refused by no role, or denied, in the mix
// the node labels produce.
func BenchmarkDecide(b *testing.B) {
	p := benchPolicy(b, 1000)
	s := Subject{
		User:   "bob",
		Claims: map[string][]string{"unix_login": {"bsmith"}},
		Roles:  []string{"role-7", "role-10", "role-57", "role-107"},
	}
	for _, n := range []int{100, 1000, 10000} {
		nodes := benchNodes(n)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			allowed := 0
			i := 0
			for b.Loop() {
				if p.Decide(s, "u7", nodes[i%len(nodes)]).Allowed {
					allowed++
				}
				i++
			}
			if allowed == 0 {
				b.Fatal("no decision was allowed; the benchmark measures nothing useful")
			}
		})
	}
}

// BenchmarkDecideAllowed is the hot path of an accepted login alone.
func BenchmarkDecideAllowed(b *testing.B) {
	p := benchPolicy(b, 1000)
	s := Subject{User: "bob", Roles: []string{"role-7", "role-10", "role-57", "role-107"}}
	n := Node{Name: "db", Labels: map[string]string{"env": "prod", "team": "t7", "zone": "eu-1"}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Decide(s, "bob", n).Allowed {
			b.Fatal("refused")
		}
	}
}

func BenchmarkParse1000Roles(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchPolicy(b, 1000)
	}
}
