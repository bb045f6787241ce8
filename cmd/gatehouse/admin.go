package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osuser "os/user"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/reqtext"
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
	claims := claimFlag{}
	fs.Var(claims, "claim", "KEY=VALUE: a hypothetical claim of the login, in place of the stored ones (repeatable)")
	rolesFlag := fs.String("roles", "", "R[,R]: hypothetical roles, in place of users:, claims and grants")
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
	var roles []string
	if *rolesFlag != "" {
		for _, r := range strings.Split(*rolesFlag, ",") {
			if r = strings.TrimSpace(r); r == "" {
				return usageError{fmt.Sprintf("--roles %q names an empty role", *rolesFlag)}
			}
			roles = append(roles, r)
		}
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
	for _, r := range roles {
		if !b.Policy.Current().HasRole(r) {
			return usageError{fmt.Sprintf("--roles: unknown role %q (not in %s)", r, b.Policy.Current().Source())}
		}
	}
	// Without --claim, the claims the bastion would see: those of the
	// user's latest login.
	var used []string
	id := access.Identity{User: *user}
	if len(claims) > 0 {
		id.Claims = claims
		used = append(used, "claims: given with --claim "+formatClaims(claims))
	} else {
		l, err := b.Store.LatestLogin(ctx, *user)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			used = append(used, "claims: none (no login of "+termsafe.String(*user)+" is stored)")
		case err != nil:
			return err
		default:
			id.Claims = l.Claims
			used = append(used, fmt.Sprintf("claims: from login %s (%s) at %s%s: %s", termsafe.String(l.ID), l.Kind,
				l.Created.Local().Format(time.RFC3339), loginState(l, time.Now()), formatClaims(l.Claims)))
		}
	}
	pn := policy.Node{Name: n.Name, Labels: n.Labels}
	v, err := b.Access.Authorize(ctx, id, *login, pn)
	if err != nil {
		return err
	}
	if roles != nil {
		// The same decision over the hypothetical roles.
		v = v.Standing.Assume(roles).Decide(*login, pn)
		used = append(used, "roles: given with --roles (users:, claims_to_roles and grants not used)")
	}
	used = append(used, usedGrants(v.Standing, roles != nil), usedLock(v.Standing))
	printVerdict(stdout, *user, *login, *node, v)
	if !v.Allowed && v.Rule != access.RuleLock {
		// What a request for each role the user may ask for needs.
		for _, line := range b.Policy.Current().RequestHelp(v.Standing.Subject, *login, pn) {
			fmt.Fprintf(stdout, "may request %s\n", termsafe.String(line))
		}
	}
	fmt.Fprintln(stdout, "used:")
	for _, u := range used {
		fmt.Fprintf(stdout, "  %s\n", u)
	}
	if !v.Allowed {
		return exitCode(1)
	}
	return nil
}

// printVerdict is policy check's answer; the first line says allowed or
// denied, and for a lock names its reason (the operator may know it).
func printVerdict(w io.Writer, user, login, node string, v access.Verdict) {
	f := termsafe.String
	switch {
	case v.Allowed:
		fmt.Fprintf(w, "allowed: %s may log in as %s on %s\n", f(user), f(login), f(node))
	case v.Rule == access.RuleLock:
		fmt.Fprintf(w, "denied: %s is locked (%s)\n", f(user), f(v.Standing.Lock.Reason))
	default:
		fmt.Fprintf(w, "denied: %s may not log in as %s on %s\n", f(user), f(login), f(node))
	}
	fmt.Fprintf(w, "rule: %s\nroles: %s\n", f(v.Rule), strings.Join(termsafe.Strings(v.Standing.Subject.Roles), ","))
	if v.Allowed && len(v.RequestIDs) > 0 {
		fmt.Fprintf(w, "depends on: request %s\n", strings.Join(v.RequestIDs, ","))
	}
	if v.Hint != "" {
		fmt.Fprintf(w, "hint: %s\n", f(v.Hint))
	}
	if v.Notice != "" {
		fmt.Fprintf(w, "the user sees: gatehouse: %s\n", v.Notice)
	}
}

func usedGrants(e access.Effective, assumed bool) string {
	if assumed {
		return "grants: not used (--roles)"
	}
	if len(e.Grants) == 0 {
		return "grants: none active"
	}
	var gs []string
	for _, g := range e.Grants {
		// A one-login grant allows that login on that node, not the role
		// it borrows: say so, as requests ID does.
		s := termsafe.String(g.ID) + " (" + reqtext.Describe(g)
		if g.ForSession {
			if g.Session != "" {
				s += ", bound to session " + termsafe.String(g.Session)
			} else {
				s += ", no session has used it yet"
			}
		}
		if g.GrantEnd != nil {
			s += " until " + g.GrantEnd.Local().Format(time.RFC3339)
		}
		gs = append(gs, s+")")
	}
	return "grants: " + strings.Join(gs, ", ")
}

func usedLock(e access.Effective) string {
	l := e.Lock
	if l == nil {
		return "lock: none"
	}
	until := "until unlocked"
	if l.Expires != nil {
		until = "until " + l.Expires.Local().Format(time.RFC3339)
	}
	return fmt.Sprintf("lock: by %s at %s, %s: %s", termsafe.String(l.By), l.Created.Local().Format(time.RFC3339), until, termsafe.String(l.Reason))
}

func loginState(l storage.Login, now time.Time) string {
	switch {
	case l.Revoked:
		return ", revoked"
	case !now.Before(l.Expires):
		return ", expired"
	}
	return ""
}

// formatClaims shows claims sorted by key: groups=dba,dev email=bob@example.com.
func formatClaims(c map[string][]string) string {
	if len(c) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, termsafe.String(k)+"="+strings.Join(termsafe.Strings(c[k]), ","))
	}
	return strings.Join(parts, " ")
}

// claimFlag collects repeated --claim KEY=VALUE; a key given twice holds
// both values, as a list claim would.
type claimFlag map[string][]string

func (c claimFlag) String() string { return formatClaims(c) }

func (c claimFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	c[k] = append(c[k], v)
	return nil
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
		_ = audit.Append(ctx, b.Audit, b.Log, storage.Event{Type: audit.TypeAuditVerify, Actor: "operator", Target: "audit", Outcome: outcome,
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
