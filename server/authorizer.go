package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/reqtext"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// authorizer is the proxy's view of package access: every answer comes
// from access.Service.Authorize or from the standing it decides on
// (Effective), read afresh at every call. It only translates types.
type authorizer struct {
	access *access.Service
	now    func() time.Time
}

func toPolicyNode(n config.Node) policy.Node { return policy.Node{Name: n.Name, Labels: n.Labels} }

func toAccessIdentity(id proxy.Identity) access.Identity {
	return access.Identity{User: id.User, Claims: id.Claims}
}

// errUnchecked is what a user sees when their standing cannot be read: a
// bastion command fails closed.
var errUnchecked = errors.New("access could not be checked right now; try again")

// Admit gates the bastion's own commands through access.Admit: a locked
// user gets the lock's one line, and a store that cannot be read refuses.
func (a *authorizer) Admit(ctx context.Context, id proxy.Identity) error {
	v, err := a.access.Admit(ctx, toAccessIdentity(id))
	if err != nil {
		return errUnchecked
	}
	if !v.Allowed {
		return errors.New(v.Notice)
	}
	return nil
}

func (a *authorizer) Authorize(ctx context.Context, id proxy.Identity, login string, node config.Node) (proxy.Verdict, error) {
	v, err := a.access.Authorize(ctx, toAccessIdentity(id), login, toPolicyNode(node))
	if err != nil {
		return proxy.Verdict{}, err
	}
	return proxy.Verdict{Allowed: v.Allowed, Reason: v.Reason, Rule: v.Rule, Notice: v.Notice, Hint: v.Hint,
		Roles: v.Roles, RequestIDs: v.RequestIDs, PortForwarding: v.Options.PortForwarding,
		AgentForwarding: v.Options.AgentForwarding, MaxSessionTTL: v.Options.MaxSessionTTL}, nil
}

func (a *authorizer) Nodes(ctx context.Context, id proxy.Identity, nodes []config.Node) ([]proxy.NodeAccess, error) {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return nil, fmt.Errorf("effective roles of %s: %w", id.User, err)
	}
	var out []proxy.NodeAccess
	for _, n := range nodes {
		if logins := eff.Logins(toPolicyNode(n)); len(logins) > 0 {
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
		fmt.Fprintf(&b, "grant: %s via request %s%s\n", reqtext.Describe(g), termsafe.String(g.ID), left)
	}
	return b.String(), nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
