package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// authorizer answers the proxy's questions from the current policy and the
// user's current roles (base + active grants − locks), recomputed at every
// call: nothing is cached past a change. The one reuse is a jump's
// admission deciding that same jump's login (see AdmitJump).
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
	_, err := a.AdmitJump(ctx, id)
	return err
}

// admissionReuse bounds how long an admission's reading of the user may
// decide the jump's login: the inner handshake normally takes milliseconds,
// and a client that stalls it gets a fresh read instead.
const admissionReuse = time.Second

// AdmitJump is Admit for a jump (proxy.JumpAdmitter): the admission it
// returns decides the jump's login from what Admit read, so a new session
// reads the user's lock and grants once instead of twice.
func (a *authorizer) AdmitJump(ctx context.Context, id proxy.Identity) (proxy.Admission, error) {
	// Taken before the read: a change counted after this point, even one
	// racing the read, makes the admission read again.
	gen, pol, at := a.access.Generation(), a.policy.Current(), a.now()
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return nil, fmt.Errorf("access could not be checked right now; try again")
	}
	if eff.Lock != nil {
		// The reason stays with the security team: it may be about an
		// investigation the user should not learn of.
		msg := fmt.Sprintf("%s is locked", id.User)
		if eff.Lock.Expires != nil {
			msg += fmt.Sprintf(" until %s", eff.Lock.Expires.Local().Format("2006-01-02 15:04 MST"))
		}
		return nil, fmt.Errorf("%s; contact your security team", msg)
	}
	return &admission{a: a, id: id, eff: eff, gen: gen, pol: pol, at: at}, nil
}

// admission is one jump's reading of its user, kept for that jump's first
// decision. It is never consulted again: live sessions are re-checked with
// fresh reads, and the proxy registers the connection for those re-checks
// before it asks.
type admission struct {
	a   *authorizer
	id  proxy.Identity
	eff effective
	gen uint64
	pol *policy.Policy
	at  time.Time
}

// Authorize decides from the admission's reading while nothing can have
// changed it: no access change counted since (a lock or revocation in this
// process, or one a scan noticed), the same policy, no grant run out, and
// at most admissionReuse old. Otherwise it reads afresh.
func (ad *admission) Authorize(ctx context.Context, login string, node config.Node) (proxy.Verdict, error) {
	a := ad.a
	now := a.now()
	if a.access.Generation() != ad.gen || a.policy.Current() != ad.pol || now.Sub(ad.at) > admissionReuse ||
		now.Before(ad.at) || expiredSince(ad.eff, now) {
		return a.Authorize(ctx, ad.id, login, node)
	}
	return a.decide(ad.eff, ad.id, login, node), nil
}

// expiredSince reports whether a grant of eff has ended by now; eff was
// read with only the grants active at that time.
func expiredSince(eff effective, now time.Time) bool {
	for _, g := range eff.Grants {
		if g.GrantEnd != nil && !now.Before(*g.GrantEnd) {
			return true
		}
	}
	return false
}

func (a *authorizer) Authorize(ctx context.Context, id proxy.Identity, login string, node config.Node) (proxy.Verdict, error) {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return proxy.Verdict{}, fmt.Errorf("effective roles of %s: %w", id.User, err)
	}
	return a.decide(eff, id, login, node), nil
}

// decide is the verdict for login on node given the user's standing eff.
func (a *authorizer) decide(eff effective, id proxy.Identity, login string, node config.Node) proxy.Verdict {
	if eff.Lock != nil {
		return proxy.Verdict{Allowed: false, Reason: fmt.Sprintf("%s is locked", id.User), Rule: "lock"}
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
			// w4-rules: resource grants that allowed it (policy.ResourceAllows).
			for _, gid := range d.Grants {
				if !seen[gid] {
					seen[gid] = true
					v.RequestIDs = append(v.RequestIDs, gid)
				}
			}
			sort.Strings(v.RequestIDs)
		}
		return v
	}
	if roles, _, _ := a.policy.Current().Requestable(eff.Subject); len(roles) > 0 {
		v.Hint = fmt.Sprintf("request one with: ssh bastion request %s --reason ...", strings.Join(roles, ","))
	}
	return v
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
		// Never the reason: it may be about an investigation.
		fmt.Fprintf(&b, "LOCKED: contact your security team\n")
	}
	fmt.Fprintf(&b, "roles: %s\n", orNone(termsafe.Strings(eff.Base)))
	now := a.now()
	if len(eff.Grants) == 0 {
		fmt.Fprintf(&b, "grants: none\n")
	}
	for _, g := range eff.Grants {
		left := ""
		if g.GrantEnd != nil {
			left = fmt.Sprintf(" until %s (%s left)", g.GrantEnd.Local().Format("15:04 MST"), g.GrantEnd.Sub(now).Round(time.Second))
		}
		fmt.Fprintf(&b, "grant: %s via request %s%s\n", describeAsk(g), termsafe.String(g.ID), left)
	}
	return b.String(), nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
