package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/reqtext"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// sshCommands are the access-request commands answered over SSH by the
// bastion itself: `ssh bob@bastion request dba --reason ...`.
func (b *Bastion) sshCommands() map[string]proxy.Command {
	return map[string]proxy.Command{
		"request":  b.cmdRequest,
		"requests": b.cmdRequests,
		"approve": func(ctx context.Context, id proxy.Identity, args []string, _ io.Reader, o, e io.Writer) int {
			return b.cmdReview(ctx, id, args, true, o, e)
		},
		"deny": func(ctx context.Context, id proxy.Identity, args []string, _ io.Reader, o, e io.Writer) int {
			return b.cmdReview(ctx, id, args, false, o, e)
		},
		"cancel":    b.cmdCancel,
		"drop":      b.cmdDrop,
		"api-token": b.cmdAPIToken,
	}
}

// cmdArgs is a parsed bastion command line.
type cmdArgs struct {
	pos   []string
	vals  map[string]string
	bools map[string]bool
}

// parseCmd parses a bastion command's arguments. ssh joins the words of a
// remote command with spaces, so `ssh bastion request dba --reason "disk
// full"` arrives as separate words: a text flag (--reason) takes every word
// up to the next flag.
func parseCmd(args []string, text, value, boolean []string) (cmdArgs, error) {
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	c := cmdArgs{vals: map[string]string{}, bools: map[string]bool{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			c.pos = append(c.pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case in(boolean, name):
			c.bools[name] = true
		case in(text, name):
			words := []string{}
			if hasVal {
				words = append(words, val)
			}
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				words = append(words, args[i])
			}
			c.vals[name] = strings.Join(words, " ")
		case in(value, name):
			if !hasVal {
				if i+1 >= len(args) {
					return c, fmt.Errorf("flag --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			c.vals[name] = val
		default:
			return c, fmt.Errorf("unknown flag %s", a)
		}
	}
	return c, nil
}

const requestUsage = "gatehouse: usage: request ROLE[,ROLE] --reason TEXT [--duration 1h] [--wait] [--for-session]\n" +
	"       request --node NODE | --labels KEY=VALUE[,KEY=VALUE] --login LOGIN --reason TEXT [--duration 1h] [--wait] [--for-session]"

func (b *Bastion) cmdRequest(ctx context.Context, id proxy.Identity, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c, err := parseCmd(args, []string{"reason"}, []string{"duration", "node", "labels", "login"}, []string{"wait", "for-session"})
	node, labels, login := c.vals["node"], c.vals["labels"], c.vals["login"]
	resource := node != "" || labels != "" || login != ""
	if err != nil || len(c.pos) > 1 || !resource && len(c.pos) != 1 || resource && ((node == "") == (labels == "") || login == "") {
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse: %s\n", termsafe.String(err.Error()))
		}
		fmt.Fprintln(stderr, requestUsage)
		return 2
	}
	var dur time.Duration
	if d := c.vals["duration"]; d != "" {
		if dur, err = time.ParseDuration(d); err != nil || dur <= 0 {
			fmt.Fprintf(stderr, "gatehouse: bad --duration %s (use e.g. 30m or 2h)\n", termsafe.Quote(d))
			return 2
		}
	}
	ask := access.Ask{Reason: c.vals["reason"], Duration: dur, Login: login, ForSession: c.bools["for-session"]}
	if len(c.pos) == 1 {
		ask.Roles = strings.Split(c.pos[0], ",")
	}
	if node != "" {
		// An unknown node gets the node's name and no labels: no role
		// allows anything there, so the refusal is the same as for a
		// node the user may not reach, and does not tell which nodes exist.
		n := policy.Node{Name: node}
		if cn, ok := b.Config.Node(node); ok {
			n = toPolicyNode(cn)
		}
		ask.Node = &n
	}
	if labels != "" {
		if ask.Labels, err = policy.ParseLabels(labels); err != nil {
			fmt.Fprintf(stderr, "gatehouse: --%s\n", termsafe.String(err.Error()))
			return 2
		}
		for _, cn := range b.Config.Nodes {
			ask.Nodes = append(ask.Nodes, toPolicyNode(cn))
		}
	}
	eff, err := b.Access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse: cannot check your roles right now; try again")
		return 1
	}
	req, err := b.Access.Ask(ctx, eff, ask)
	if err != nil {
		return b.refused(ctx, stderr, "request", err)
	}
	reqtext.Created(stdout, req, "ssh bastion approve", b.Access.Explain(req).Status)
	if !c.bools["wait"] {
		return 0
	}
	fmt.Fprintln(stdout, "waiting for a decision...")
	done, err := b.Access.Wait(ctx, req.ID)
	if err != nil {
		return b.refused(ctx, stderr, "wait for request "+req.ID, err)
	}
	return reqtext.Outcome(stdout, done)
}

func (b *Bastion) cmdRequests(ctx context.Context, id proxy.Identity, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	eff, err := b.Access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse: cannot check your roles right now; try again")
		return 1
	}
	if len(args) == 1 {
		r, err := b.Access.Get(ctx, eff, args[0])
		if err != nil {
			return b.refused(ctx, stderr, "look up request", err)
		}
		st := b.Access.Explain(r)
		reqtext.Show(stdout, r, reqtext.Approval{Rule: st.Rule, Status: st.Status})
		return 0
	}
	reqs, err := b.Access.List(ctx, eff, storage.RequestFilter{Limit: 50})
	if err != nil {
		return b.refused(ctx, stderr, "list requests", err)
	}
	reqtext.List(stdout, reqs)
	return 0
}

func (b *Bastion) cmdReview(ctx context.Context, id proxy.Identity, args []string, approve bool, stdout, stderr io.Writer) int {
	c, err := parseCmd(args, []string{"reason"}, []string{"roles"}, nil)
	if err != nil || len(c.pos) != 1 || !approve && c.vals["roles"] != "" {
		fmt.Fprintln(stderr, "gatehouse: usage: approve ID [--roles ROLE[,ROLE]] [--reason TEXT] | deny ID [--reason TEXT]")
		return 2
	}
	pos, reason := c.pos, c.vals["reason"]
	eff, err := b.Access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse: cannot check your roles right now; try again")
		return 1
	}
	v := access.ReviewVerdict{Approve: approve, Reason: reason}
	if roles := c.vals["roles"]; roles != "" {
		v.Roles = strings.Split(roles, ",")
	}
	r, err := b.Access.ReviewWith(ctx, eff, pos[0], v)
	if err != nil {
		return b.refused(ctx, stderr, "review", err)
	}
	st := b.Access.Explain(r)
	reqtext.Reviewed(stdout, r, approve, v.Roles, reqtext.Approval{Rule: st.Rule, Status: st.Status})
	return 0
}

func (b *Bastion) cmdCancel(ctx context.Context, id proxy.Identity, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return b.simple(ctx, id, args, stdout, stderr, "cancel", func(ctx context.Context, eff access.Effective, rid string) (storage.Request, error) {
		return b.Access.Cancel(ctx, eff, rid)
	})
}

func (b *Bastion) cmdDrop(ctx context.Context, id proxy.Identity, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return b.simple(ctx, id, args, stdout, stderr, "drop", func(ctx context.Context, eff access.Effective, rid string) (storage.Request, error) {
		return b.Access.Revoke(ctx, eff, rid, "dropped by requester")
	})
}

func (b *Bastion) simple(ctx context.Context, id proxy.Identity, args []string, stdout, stderr io.Writer, name string, fn func(context.Context, access.Effective, string) (storage.Request, error)) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "gatehouse: usage: %s ID\n", name)
		return 2
	}
	eff, err := b.Access.Effective(ctx, id.User, id.Claims)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse: cannot check your roles right now; try again")
		return 1
	}
	r, err := fn(ctx, eff, args[0])
	if err != nil {
		return b.refused(ctx, stderr, name, err)
	}
	fmt.Fprintf(stdout, "request %s is now %s\n", r.ID, r.State)
	return 0
}

// refused writes the one line for a failed access call and returns the
// exit status. Every command maps errors here, once: a refusal prints its
// own words (escaped: they may quote what the user typed), so "no such
// request" and "not yours" (both access.ErrNoSuchRequest, one message)
// reach the user as the same bytes with the same status; anything else is
// logged and reported as a failure to retry.
func (b *Bastion) refused(ctx context.Context, stderr io.Writer, what string, err error) int {
	var ref *access.Refusal
	switch {
	case errors.Is(err, access.ErrNoSuchRequest) && errors.As(err, &ref):
		fmt.Fprintf(stderr, "gatehouse: %s\n", termsafe.String(ref.Msg))
	case errors.As(err, &ref):
		fmt.Fprintf(stderr, "gatehouse: %s refused: %s\n", what, termsafe.String(ref.Msg))
	default:
		b.Log.ErrorContext(ctx, "bastion command failed", "command", what, "err", err)
		fmt.Fprintf(stderr, "gatehouse: could not %s right now; try again\n", what)
	}
	return 1
}
