package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/apiclient"
	"github.com/gatehouse-dev/gatehouse/internal/reqtext"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Requests runs `gatehouse request ...` against the bastion's HTTP API as
// the profile's user, through apiclient, with a user API token minted over
// SSH. Each method prints what the bastion's own SSH commands print and
// returns the exit status; a refusal is one `gatehouse: ...` line on Stderr
// (status 1). An error means the bastion could not be reached or answered
// nonsense.
type Requests struct {
	Stdout, Stderr io.Writer
	// Poll is how often --wait asks for the request's state [2s].
	Poll time.Duration

	s apiSession
}

// NewRequests returns the request commands for profile p.
func NewRequests(p Profile, stdout, stderr io.Writer) *Requests {
	return &Requests{Stdout: stdout, Stderr: stderr, Poll: 2 * time.Second,
		s: apiSession{p: p, mint: APIToken, timeNow: time.Now}}
}

// Create files nr: roles, or one login on one node. With wait it then
// waits for the decision: status 0 only when approved.
func (c *Requests) Create(ctx context.Context, nr apiclient.NewRequest, wait bool) (int, error) {
	api, err := c.s.client(ctx)
	if err != nil {
		return 0, err
	}
	r, err := api.Create(ctx, nr)
	if err != nil {
		return c.refused("request", err)
	}
	reqtext.Created(c.Stdout, toStorage(r), "gatehouse request approve", r.Approval.Status)
	if !wait {
		return 0, nil
	}
	fmt.Fprintln(c.Stdout, "waiting for a decision...")
	id := r.ID
	for r.State == storage.StatePending {
		t := time.NewTimer(c.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("wait for request %s: %w", r.ID, ctx.Err())
		case <-t.C:
		}
		if api, err = c.s.client(ctx); err != nil {
			return 0, err
		}
		if r, err = api.Request(ctx, id); err != nil {
			return c.refused("wait for request "+id, err)
		}
	}
	return reqtext.Outcome(c.Stdout, toStorage(r)), nil
}

// List prints the requests the user may see (their own and those they may
// review), newest first.
func (c *Requests) List(ctx context.Context) (int, error) {
	api, err := c.s.client(ctx)
	if err != nil {
		return 0, err
	}
	list, err := api.Requests(ctx, apiclient.ListOptions{All: true, Limit: 50})
	if err != nil {
		return c.refused("list requests", err)
	}
	reqs := make([]storage.Request, 0, len(list))
	for _, r := range list {
		reqs = append(reqs, toStorage(r))
	}
	reqtext.List(c.Stdout, reqs)
	return 0, nil
}

// Show prints one request with its reviews.
func (c *Requests) Show(ctx context.Context, id string) (int, error) {
	api, err := c.s.client(ctx)
	if err != nil {
		return 0, err
	}
	r, err := api.Request(ctx, id)
	if err != nil {
		return c.refused("look up request", err)
	}
	reqtext.Show(c.Stdout, toStorage(r), reqtext.Approval{Rule: r.Approval.Rule, Status: r.Approval.Status})
	return 0, nil
}

// Review approves or denies request id as the user; roles, on approval,
// approves only those of the requested roles (nil: all).
func (c *Requests) Review(ctx context.Context, id string, approve bool, roles []string, reason string) (int, error) {
	api, err := c.s.client(ctx)
	if err != nil {
		return 0, err
	}
	review := api.Deny
	if approve {
		review = api.Approve
	}
	r, err := review(ctx, id, apiclient.ReviewOptions{Reason: reason, Roles: roles})
	if err != nil {
		return c.refused("review", err)
	}
	reqtext.Reviewed(c.Stdout, toStorage(r), approve, roles, reqtext.Approval{Rule: r.Approval.Rule, Status: r.Approval.Status})
	return 0, nil
}

// Cancel withdraws the user's own pending request.
func (c *Requests) Cancel(ctx context.Context, id string) (int, error) {
	return c.change(ctx, "cancel", id, func(api *apiclient.Client) (apiclient.Request, error) { return api.Cancel(ctx, id) })
}

// Drop gives up the user's own active grant now.
func (c *Requests) Drop(ctx context.Context, id string) (int, error) {
	return c.change(ctx, "drop", id, func(api *apiclient.Client) (apiclient.Request, error) {
		return api.Drop(ctx, id, "dropped by requester")
	})
}

func (c *Requests) change(ctx context.Context, what, id string, call func(*apiclient.Client) (apiclient.Request, error)) (int, error) {
	api, err := c.s.client(ctx)
	if err != nil {
		return 0, err
	}
	r, err := call(api)
	if err != nil {
		return c.refused(what, err)
	}
	fmt.Fprintf(c.Stdout, "request %s is now %s\n", termsafe.String(r.ID), termsafe.String(r.State))
	return 0, nil
}

// refused prints the bastion's one-line refusal the way its SSH commands
// do (a request that is not there, or not the user's to see, in the same
// words either way) and returns status 1; anything but a refusal is
// returned as an error.
func (c *Requests) refused(what string, err error) (int, error) {
	var e *apiclient.Error
	if !errors.As(err, &e) {
		return 0, fmt.Errorf("cannot reach the bastion's API at %s: %w", c.s.cred.URL, err)
	}
	msg := termsafe.String(strings.TrimSpace(e.Message))
	switch {
	case e.Status == http.StatusNotFound:
		fmt.Fprintf(c.Stderr, "gatehouse: %s\n", msg)
	case e.Status == http.StatusUnauthorized:
		fmt.Fprintf(c.Stderr, "gatehouse: the bastion refused the API token: %s\n", msg)
	case e.Status >= 500:
		fmt.Fprintf(c.Stderr, "gatehouse: could not %s right now; try again (%s)\n", what, msg)
	default:
		fmt.Fprintf(c.Stderr, "gatehouse: %s refused: %s\n", what, msg)
	}
	return 1, nil
}

// toStorage is r in the bastion's own type, for reqtext.
func toStorage(r apiclient.Request) storage.Request {
	out := storage.Request{ID: r.ID, User: r.User, Roles: r.Roles, Reason: r.Reason, Duration: r.Duration, State: r.State,
		Created: r.Created, Expires: r.Expires, GrantStart: r.GrantStart, GrantEnd: r.GrantEnd,
		StateReason: r.StateReason, StateBy: r.StateBy, Updated: r.Updated,
		Requested: r.Requested, Node: r.Node, Labels: r.Labels, Login: r.Login, ForSession: r.ForSession, Session: r.Session}
	for _, rv := range r.Reviews {
		out.Reviews = append(out.Reviews, storage.Review{Reviewer: rv.Reviewer, Via: rv.Via, Approve: rv.Approve, Reason: rv.Reason, Time: rv.Time, Roles: rv.Roles})
	}
	return out
}
