package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// authorizer answers the proxy's questions from the current policy and the
// user's current roles (base + active grants − locks), recomputed at every
// call: nothing is cached past a change.
type authorizer struct {
	policy *policy.Engine
	access *access.Service
	now    func() time.Time
}

type effective = access.Effective

func toPolicyNode(n config.Node) policy.Node { return policy.Node{Name: n.Name, Labels: n.Labels} }

// Admit refuses locked users, and fails closed when the store cannot be
// read. (Live sessions are re-checked through Authorize alone, which keeps
// them through a short database outage.)
func (a *authorizer) Admit(ctx context.Context, id proxy.Identity) error {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return fmt.Errorf("access could not be checked right now; try again")
	}
	if eff.Lock != nil {
		// The reason stays with the security team: it may be about an
		// investigation the user should not learn of.
		msg := fmt.Sprintf("%s is locked", id.User)
		if eff.Lock.Expires != nil {
			msg += fmt.Sprintf(" until %s", eff.Lock.Expires.Local().Format("2006-01-02 15:04 MST"))
		}
		return fmt.Errorf("%s; contact your security team", msg)
	}
	return nil
}

func (a *authorizer) Authorize(ctx context.Context, id proxy.Identity, login string, node config.Node) (proxy.Verdict, error) {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return proxy.Verdict{}, fmt.Errorf("effective roles of %s: %w", id.User, err)
	}
	if eff.Lock != nil {
		return proxy.Verdict{Allowed: false, Reason: fmt.Sprintf("%s is locked", id.User), Rule: "lock"}, nil
	}
	d := a.policy.Current().Decide(eff.Subject, login, toPolicyNode(node))
	v := proxy.Verdict{Allowed: d.Allowed, Rule: d.Rule, Reason: d.Rule, Roles: d.Roles,
		PortForwarding: d.Options.PortForwarding, AgentForwarding: d.Options.AgentForwarding, MaxSessionTTL: d.Options.MaxSessionTTL}
	if d.Allowed {
		// The session depends on grants only when no base role allows it.
		base := map[string]bool{}
		for _, r := range eff.Base {
			base[r] = true
		}
		dependsOnGrant := true
		for _, r := range d.Roles {
			if base[r] {
				dependsOnGrant = false
			}
		}
		if dependsOnGrant {
			seen := map[string]bool{}
			for _, r := range d.Roles {
				for _, gid := range eff.GrantsFor(r) {
					if !seen[gid] {
						seen[gid] = true
						v.RequestIDs = append(v.RequestIDs, gid)
					}
				}
			}
			sort.Strings(v.RequestIDs)
		}
		return v, nil
	}
	if roles, _, _ := a.policy.Current().Requestable(eff.Subject); len(roles) > 0 {
		v.Hint = fmt.Sprintf("request one with: ssh bastion request %s --reason ...", strings.Join(roles, ","))
	}
	return v, nil
}

func (a *authorizer) Nodes(ctx context.Context, id proxy.Identity, nodes []config.Node) ([]proxy.NodeAccess, error) {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return nil, fmt.Errorf("effective roles of %s: %w", id.User, err)
	}
	if eff.Lock != nil {
		return nil, nil
	}
	p := a.policy.Current()
	var out []proxy.NodeAccess
	for _, n := range nodes {
		if logins := p.Logins(eff.Subject, toPolicyNode(n)); len(logins) > 0 {
			out = append(out, proxy.NodeAccess{Node: n, Logins: logins})
		}
	}
	return out, nil
}

func (a *authorizer) Describe(ctx context.Context, id proxy.Identity) (string, error) {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return "", fmt.Errorf("effective roles of %s: %w", id.User, err)
	}
	var b strings.Builder
	if eff.Lock != nil {
		fmt.Fprintf(&b, "LOCKED: %s (by %s)\n", eff.Lock.Reason, eff.Lock.By)
	}
	fmt.Fprintf(&b, "roles: %s\n", orNone(eff.Base))
	now := a.now()
	if len(eff.Grants) == 0 {
		fmt.Fprintf(&b, "grants: none\n")
	}
	for _, g := range eff.Grants {
		left := ""
		if g.GrantEnd != nil {
			left = fmt.Sprintf(" until %s (%s left)", g.GrantEnd.Local().Format("15:04 MST"), g.GrantEnd.Sub(now).Round(time.Second))
		}
		fmt.Fprintf(&b, "grant: %s via request %s%s\n", strings.Join(g.Roles, ","), g.ID, left)
	}
	return b.String(), nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
