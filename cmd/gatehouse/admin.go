package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	osuser "os/user"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// openBastion builds the server-side objects for an admin command.
func openBastion(ctx context.Context, cfgPath string) (*server.Bastion, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	// The CLI prints its result and nothing else: what the libraries log
	// (a lock, a session closed) is in the audit log and the server's log.
	log := slog.New(slog.DiscardHandler)
	return server.Build(ctx, cfg, log)
}

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, args, err := subcommand("policy", args, stderr, "check")
	if err != nil {
		return err
	}
	fs := newFlags("policy check", stderr)
	cfgPath := configFlag(fs)
	user := fs.String("user", "", "user name")
	login := fs.String("login", "", "login on the node")
	node := fs.String("node", "", "node name")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if *user == "" || *login == "" || *node == "" {
		return usageError{"--user, --login and --node are required"}
	}
	b, err := openBastion(ctx, *cfgPath)
	if err != nil {
		return usageError{err.Error()}
	}
	defer b.Close()
	n, ok := b.Config.Node(*node)
	if !ok {
		return usageError{fmt.Sprintf("unknown node %q (not in nodes: of %s)", *node, b.Config.Path())}
	}
	eff, err := b.Access.Effective(ctx, *user, nil)
	if err != nil {
		return err
	}
	if eff.Lock != nil {
		fmt.Fprintf(stdout, "denied: %s is locked (%s)\n", *user, termsafe.String(eff.Lock.Reason))
		return exitCode(1)
	}
	d := b.Policy.Current().Decide(eff.Subject, *login, policy.Node{Name: n.Name, Labels: n.Labels})
	if d.Allowed {
		fmt.Fprintf(stdout, "allowed: %s may log in as %s on %s\nrule: %s\nroles: %s\n", *user, *login, *node, d.Rule, strings.Join(eff.Subject.Roles, ","))
		return nil
	}
	fmt.Fprintf(stdout, "denied: %s may not log in as %s on %s\nrule: %s\nroles: %s\n", *user, *login, *node, d.Rule, strings.Join(eff.Subject.Roles, ","))
	for _, line := range b.Policy.Current().RequestHelp(eff.Subject, *login, policy.Node{Name: n.Name, Labels: n.Labels}) {
		fmt.Fprintf(stdout, "may request %s\n", line)
	}
	return exitCode(1)
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("audit", args, stderr, "verify", "ls")
	if err != nil {
		return err
	}
	fs := newFlags("audit "+sub, stderr)
	cfgPath := configFlag(fs)
	var typ, user, since *string
	var asJSON *bool
	var limit *int
	var after *int64
	if sub == "ls" {
		typ = fs.String("type", "", "event type (session.start), or a prefix of types (request: request.*)")
		user = fs.String("user", "", "actor or target")
		since = fs.String("since", "", "DURATION (2h, 7d) or TIME (RFC 3339 or 2006-01-02)")
		asJSON = fs.Bool("json", false, "JSON lines")
		limit = fs.Int("limit", 100, "page size (0 = everything)")
		after = fs.Int64("after", 0, "only events with sequence number above this (paging)")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	b, err := openBastion(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer b.Close()
	if sub == "verify" {
		rep, err := audit.Verify(ctx, b.Store)
		if err != nil {
			return err
		}
		outcome := "success"
		if !rep.OK {
			outcome = "failure"
		}
		_ = b.Audit.Append(ctx, storage.Event{Type: "audit.verify", Actor: "operator", Target: "audit", Outcome: outcome,
			Fields: map[string]any{"events": rep.Events, "first_seq": rep.FirstSeq, "last_seq": rep.LastSeq, "bad_seq": rep.BadSeq, "problem": rep.Problem}})
		if !rep.OK {
			fmt.Fprintf(stdout, "audit log TAMPERED: first bad sequence number %d: %s\n", rep.BadSeq, rep.Problem)
			return exitCode(1)
		}
		fmt.Fprintf(stdout, "audit log intact: %d events, sequence %d..%d\n", rep.Events, rep.FirstSeq, rep.LastSeq)
		cp, ok, err := b.VerifyCheckpoint(ctx)
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "audit log TAMPERED: %v\n", err)
			return exitCode(1)
		case ok:
			fmt.Fprintf(stdout, "signed checkpoint at sequence %d (%s) matches\n", cp.Seq, cp.Time.Local().Format(time.RFC3339))
		}
		return nil
	}
	f := storage.EventFilter{Type: *typ, User: *user, Limit: *limit, After: *after}
	if *since != "" {
		t, err := audit.ParseSince(*since, time.Now())
		if err != nil {
			return usageError{err.Error()}
		}
		f.Since = t
	}
	evs, err := b.Store.ListEvents(ctx, f)
	if err != nil {
		return err
	}
	if len(evs) == 0 && f.Type != "" && !strings.HasSuffix(f.Type, ".") {
		// --type request means every request.* event.
		f.Type, f.TypePrefix = "", *typ+"."
		if evs, err = b.Store.ListEvents(ctx, f); err != nil {
			return err
		}
		if len(evs) == 0 {
			fmt.Fprintf(stderr, "gatehouse audit ls: no event has type %q or a type starting with %q\n", *typ, *typ+".")
		}
	}
	if *asJSON {
		return audit.WriteJSON(stdout, evs)
	}
	return audit.WriteText(stdout, evs)
}

func runLock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return lockCmd(ctx, "lock", args, stdout, stderr)
}

func runUnlock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return lockCmd(ctx, "unlock", args, stdout, stderr)
}

func lockCmd(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(name, stderr)
	cfgPath := configFlag(fs)
	user := fs.String("user", "", "user to "+name)
	by := fs.String("by", osUser(), "who is doing this (recorded in the audit log as admin:NAME)")
	var reason *string
	var ttl *time.Duration
	var force *bool
	if name == "lock" {
		reason = fs.String("reason", "", "why (required)")
		ttl = fs.Duration("ttl", 0, "lock duration (0 = until unlocked)")
		force = fs.Bool("force", false, "lock a name Gatehouse has never seen (e.g. before their first login)")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if *user == "" {
		return usageError{"--user is required"}
	}
	if name == "lock" && *reason == "" {
		return usageError{"--reason is required"}
	}
	if strings.TrimSpace(*by) == "" {
		return usageError{"--by is required (the OS account name is unknown)"}
	}
	b, err := openBastion(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer b.Close()
	actor := access.AdminAs(*by)
	if name == "lock" {
		if !*force {
			known, err := b.KnownUser(ctx, *user)
			if err != nil {
				return err
			}
			if !known {
				return usageError{fmt.Sprintf("unknown user %q (not in roles.yaml users:, never logged in, no session or request); use --force to lock the name anyway", termsafe.String(*user))}
			}
		}
		if _, err := b.Access.Lock(ctx, actor, *user, *reason, *ttl); err != nil {
			return err
		}
		until := "until unlocked"
		if *ttl > 0 {
			until = "until " + time.Now().Add(*ttl).Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "locked %s %s (by %s); live sessions are being closed\n", termsafe.String(*user), until, termsafe.String(actor.User()))
		return nil
	}
	if err := b.Access.Unlock(ctx, actor, *user); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "unlocked %s (by %s)\n", termsafe.String(*user), termsafe.String(actor.User()))
	return nil
}

// osUser is the operator's OS account, the default of --by.
func osUser() string {
	if u, err := osuser.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
