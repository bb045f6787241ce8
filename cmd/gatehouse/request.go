package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-dev/gatehouse/apiclient"
	"github.com/gatehouse-dev/gatehouse/client"
	"github.com/gatehouse-dev/gatehouse/policy"
)

func defaultHome() string {
	if h := os.Getenv("GATEHOUSE_HOME"); h != "" {
		return h
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".gatehouse"
	}
	return filepath.Join(home, ".gatehouse")
}

// profileFlags are the connection flags shared by client commands; each
// overrides the profile written by `gatehouse login`.
type profileFlags struct {
	home, bastion, user, identity, hostCA *string
}

func addProfileFlags(fs interface {
	String(name, value, usage string) *string
}) profileFlags {
	return profileFlags{
		home:     fs.String("home", defaultHome(), "Gatehouse credentials folder"),
		bastion:  fs.String("bastion", "", "bastion SSH address host:port (default: from gatehouse login)"),
		user:     fs.String("user", "", "user name (default: from gatehouse login)"),
		identity: fs.String("identity", "", "private key whose certificate is KEY-cert.pub (default: from gatehouse login)"),
		hostCA:   fs.String("host-ca", "", "file with the bastion's host CA key (default: from gatehouse login)"),
	}
}

func (pf profileFlags) profile() (client.Profile, error) {
	p, err := client.LoadProfile(*pf.home)
	explicit := *pf.bastion != "" && *pf.user != "" && *pf.identity != "" && *pf.hostCA != ""
	if err != nil && !explicit {
		return p, err
	}
	if *pf.bastion != "" {
		p.SSHAddr = *pf.bastion
	}
	if *pf.user != "" {
		p.User = *pf.user
	}
	if *pf.identity != "" {
		p.KeyFile = *pf.identity
	}
	if *pf.hostCA != "" {
		b, err := os.ReadFile(*pf.hostCA)
		if err != nil {
			return p, fmt.Errorf("read --host-ca: %w", err)
		}
		p.HostCALine = strings.TrimSpace(string(b))
	}
	return p, nil
}

func runRequest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("request", args, stderr, "create", "ls", "show", "approve", "deny", "cancel", "drop")
	if err != nil {
		return err
	}
	fs := newFlags("request "+sub, stderr)
	pf := addProfileFlags(fs)
	var roles, reason, duration, node, labels, login *string
	var wait, forSession *bool
	switch sub {
	case "create":
		roles = fs.String("roles", "", "roles to request, comma separated")
		node = fs.String("node", "", "resource request: the node (with --login instead of --roles)")
		labels = fs.String("labels", "", "resource request: KEY=VALUE[,KEY=VALUE], every node with all these labels (with --login, instead of --node)")
		login = fs.String("login", "", "resource request: the login on --node or --labels")
		reason = fs.String("reason", "", "why you need them")
		duration = fs.String("duration", "", "how long the access should last, e.g. 2h")
		wait = fs.Bool("wait", false, "wait until the request is decided")
		forSession = fs.Bool("for-session", false, "the grant ends when the first session that uses it ends")
	case "approve":
		roles = fs.String("roles", "", "approve only these of the requested roles, comma separated")
		reason = fs.String("reason", "", "why")
	case "deny":
		reason = fs.String("reason", "", "why")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var id string
	switch sub {
	case "create", "ls":
		if len(pos) != 0 {
			return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
		}
		if sub == "create" {
			resource := *node != "" || *labels != ""
			switch {
			case *node != "" && *labels != "":
				return usageError{"use --node or --labels, not both"}
			case resource != (*login != ""):
				return usageError{"--login goes with --node or --labels"}
			case resource && *roles != "":
				return usageError{"use --roles, or --node/--labels with --login, not both"}
			case !resource && *roles == "":
				return usageError{"--roles (or --node or --labels with --login) is required"}
			}
		}
	default:
		if len(pos) != 1 {
			return usageError{fmt.Sprintf("usage: gatehouse request %s ID", sub)}
		}
		id = pos[0]
	}
	p, err := pf.profile()
	if err != nil {
		return err
	}
	c := client.NewRequests(p, stdout, stderr)
	var code int
	switch sub {
	case "create":
		nr := apiclient.NewRequest{Node: *node, Login: *login, ForSession: *forSession, Reason: *reason, Duration: *duration}
		if *labels != "" {
			// Parsed here so a typo is a usage error before anything is sent.
			if nr.Labels, err = policy.ParseLabels(*labels); err != nil {
				return usageError{"--" + err.Error()}
			}
		}
		if *roles != "" {
			nr.Roles = strings.Split(*roles, ",")
		}
		code, err = c.Create(ctx, nr, *wait)
	case "ls":
		code, err = c.List(ctx)
	case "show":
		code, err = c.Show(ctx, id)
	case "approve", "deny":
		var subset []string
		if roles != nil && *roles != "" {
			subset = strings.Split(*roles, ",")
		}
		code, err = c.Review(ctx, id, sub == "approve", subset, *reason)
	case "cancel":
		code, err = c.Cancel(ctx, id)
	case "drop":
		code, err = c.Drop(ctx, id)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}
