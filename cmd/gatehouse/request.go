package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-dev/gatehouse/client"
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
	fs := newFlags("request", stderr)
	pf := addProfileFlags(fs)
	roles := fs.String("roles", "", "roles to request, comma separated (create)")
	reason := fs.String("reason", "", "reason (create, approve, deny)")
	duration := fs.String("duration", "", "how long the access should last (create), e.g. 2h")
	wait := fs.Bool("wait", false, "wait until the request is decided (create)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"usage: gatehouse request create|ls|show ID|approve ID|deny ID|cancel ID|drop ID"}
	}
	var remote []string
	switch pos[0] {
	case "create":
		if *roles == "" {
			return usageError{"--roles is required"}
		}
		remote = []string{"request", *roles, "--reason", *reason}
		if *duration != "" {
			remote = append(remote, "--duration", *duration)
		}
		if *wait {
			remote = append(remote, "--wait")
		}
	case "ls":
		remote = []string{"requests"}
	case "show", "approve", "deny", "cancel", "drop":
		if len(pos) != 2 {
			return usageError{fmt.Sprintf("usage: gatehouse request %s ID", pos[0])}
		}
		name := pos[0]
		if name == "show" {
			name = "requests"
		}
		remote = []string{name, pos[1]}
		if (name == "approve" || name == "deny") && *reason != "" {
			remote = append(remote, "--reason", *reason)
		}
	default:
		return usageError{fmt.Sprintf("unknown request command %q", pos[0])}
	}
	p, err := pf.profile()
	if err != nil {
		return err
	}
	code, err := client.Run(ctx, p, remote, stdout, stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}
