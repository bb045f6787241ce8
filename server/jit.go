package server

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// The authorizer files access requests for a user refused on a jump
// (proxy.AccessRequester), through the same access.Service calls as
// `request` over SSH: the policy checks them, they are audited, and
// reviewers are notified.

func (a *authorizer) RequestOptions(ctx context.Context, id proxy.Identity, login string, node config.Node) ([]proxy.RequestOption, error) {
	opts, err := a.access.RequestableFor(ctx, id.User, id.Claims, login, toPolicyNode(node))
	if err != nil {
		return nil, err
	}
	out := make([]proxy.RequestOption, 0, len(opts))
	for _, o := range opts {
		out = append(out, proxy.RequestOption{Role: o.Role, DefaultDuration: o.DefaultDuration, MaxDuration: o.MaxDuration, ReasonRequired: o.ReasonRequired})
	}
	return out, nil
}

func (a *authorizer) FileRequest(ctx context.Context, id proxy.Identity, role, reason string, d time.Duration) (proxy.FiledRequest, error) {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return proxy.FiledRequest{}, err
	}
	// The request serves the session that is waiting for it; a role the
	// policy grants for one session only is asked for that way.
	roles := []string{role}
	r, err := a.access.Ask(ctx, eff, access.Ask{Roles: roles, Reason: reason, Duration: d, ForSession: a.access.ForSessionRequired(eff, roles)})
	if err != nil {
		return proxy.FiledRequest{}, userFacing(err)
	}
	return proxy.FiledRequest{ID: r.ID, Roles: r.Roles, Duration: r.Duration, Approvers: a.access.Approvers(ctx, r)}, nil
}

func (a *authorizer) AwaitRequest(ctx context.Context, _ proxy.Identity, requestID string, progress func(status string)) (proxy.RequestOutcome, error) {
	r, err := a.access.WaitSeeing(ctx, requestID, func(r storage.Request) {
		// The line `requests ID` prints under approval:.
		progress(a.access.Explain(r).Status)
	})
	if err != nil {
		return proxy.RequestOutcome{}, userFacing(err)
	}
	return proxy.RequestOutcome{State: r.State, By: r.StateBy, Reason: r.StateReason}, nil
}

func (a *authorizer) CancelRequest(ctx context.Context, id proxy.Identity, requestID string) error {
	eff, err := a.access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return err
	}
	_, err = a.access.Cancel(ctx, eff, requestID)
	return userFacing(err)
}

// userFacing turns an access refusal into the proxy's user-facing error;
// anything else stays internal.
func userFacing(err error) error {
	var ref *access.Refusal
	if errors.As(err, &ref) {
		return &proxy.UserError{Line: "gatehouse: " + termsafe.String(ref.Msg), Cause: err}
	}
	return err
}

// The proxy finds the request dialogue by a type assertion; this keeps a
// change to the authorizer from silently turning it off.
var _ proxy.AccessRequester = (*authorizer)(nil)
