package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// helpText is what `gatehouse help CMD` and `gatehouse CMD --help` show
// besides the flag list: the usage line, what the command does and an
// example. Keys are the command as typed: "audit ls", "lock".
type helpText struct {
	usage, about, example string
}

// helps holds the help of every command and subcommand. A command with
// subcommands ("audit") has an entry of its own listing them.
func helps() map[string]helpText {
	return map[string]helpText{
		"serve": {"gatehouse serve --config FILE [--debug]",
			"Run the bastion: the SSH listener and the web/API listener.",
			"gatehouse serve --config /etc/gatehouse/gatehouse.yaml"},
		"ca": {"gatehouse ca export user|host --config FILE",
			"Subcommands:\n  export user|host   print a CA public key in OpenSSH format",
			"gatehouse ca export user --config gatehouse.yaml"},
		"ca export": {"gatehouse ca export user|host --config FILE",
			"Print the user CA key (for nodes' TrustedUserCAKeys) or the host CA key\n(for clients' @cert-authority line in known_hosts).",
			"gatehouse ca export host --config gatehouse.yaml"},
		"cert": {"gatehouse cert issue --config FILE --user NAME --pubkey FILE [--ttl 1h] [--out FILE]",
			"Subcommands:\n  issue   sign a user certificate without OIDC",
			"gatehouse cert issue --config gatehouse.yaml --user bob --pubkey ~/.ssh/id_ed25519.pub"},
		"cert issue": {"gatehouse cert issue --config FILE --user NAME --pubkey FILE [--ttl 1h] [--out FILE]",
			"Sign a user certificate for NAME without OIDC (break-glass, automation, tests).\n--out - writes the certificate to stdout.",
			"gatehouse cert issue --config gatehouse.yaml --user bob --pubkey ~/.ssh/id_ed25519.pub --ttl 8h"},
		"policy": {"gatehouse policy check --config FILE --user NAME --login LOGIN --node NODE [--claim KEY=VALUE]... [--roles R[,R]]",
			"Subcommands:\n  check   explain a policy decision",
			"gatehouse policy check --config gatehouse.yaml --user bob --login root --node db-1"},
		"policy check": {"gatehouse policy check --config FILE --user NAME --login LOGIN --node NODE [--claim KEY=VALUE]... [--roles R[,R]]",
			"Print allowed or denied and the rule that decided it: exactly what the bastion\nwould answer for the user now (claims of their latest login, active grants,\nlock), and under used: which of those it read. --claim (repeatable) replaces\nthe stored claims, --roles replaces users:, claims_to_roles and grants: a\nhypothetical question. Exit 0 when allowed, 1 when denied, 2 on bad input.",
			"gatehouse policy check --config gatehouse.yaml --user bob --login root --node db-1"},
		"audit": {"gatehouse audit verify|ls --config FILE [flags]",
			"Subcommands:\n  verify   check the audit log's hash chain (exit 0 only if intact)\n  ls       list and search audit events",
			"gatehouse audit ls --config gatehouse.yaml --type request --since 2h"},
		"audit verify": {"gatehouse audit verify --config FILE",
			"Check the audit log's hash chain and the signed checkpoint; exit 0 only if\nthe log is intact, 1 if it was tampered with.",
			"gatehouse audit verify --config gatehouse.yaml"},
		"audit ls": {"gatehouse audit ls --config FILE [--type T] [--user U] [--since DURATION|TIME] [--json]",
			"List audit events, oldest first. --type T matches the type T and every type\nstarting with T. (--type request lists request.create, request.approve, ...).",
			"gatehouse audit ls --config gatehouse.yaml --type request --user bob --since 7d"},
		"sessions": {"gatehouse sessions ls|export --config FILE [flags]",
			"Subcommands:\n  ls                  list recorded sessions\n  export SESSION_ID   write a recording as asciicast v2 to stdout",
			"gatehouse sessions ls --config gatehouse.yaml --user bob --since 1d"},
		"sessions ls": {"gatehouse sessions ls --config FILE [--user U] [--node N] [--since ...] [--grep TEXT [--identity FILE]] [--json]",
			"List recorded sessions, newest first; --json prints one object per line.\n--grep searches encrypted recordings only with --identity (an age identity\nfile), decrypting them as it reads; there is no plaintext index.",
			"gatehouse sessions ls --config gatehouse.yaml --node db-1 --grep 'drop table'"},
		"sessions export": {"gatehouse sessions export --config FILE SESSION_ID [--stream stdin|stdout|stderr] [--identity FILE]",
			"Write a session's recording as asciicast v2 to stdout (or, with --stream, the\nraw bytes of one stream of a session without a pty). An encrypted recording\n(recording.encrypt_to) needs --identity, an age identity file of a recipient.",
			"gatehouse sessions export --config gatehouse.yaml SESSION_ID > session.cast"},
		"play": {"gatehouse play --config FILE SESSION_ID [--speed X] [--idle-limit DURATION] [--identity FILE]",
			"Replay a recorded session in the terminal (space pauses, q quits). An\nencrypted recording needs --identity, an age identity file of a recipient.",
			"gatehouse play --config gatehouse.yaml SESSION_ID --speed 2 --idle-limit 2s"},
		"lock": {"gatehouse lock --config FILE --user NAME --reason TEXT [--ttl DURATION] [--by NAME] [--force]",
			"Lock a user: they lose every role, their live sessions are closed and\ntheir grants end. The user must be known (in roles.yaml users:, or seen\nin the audit log: logins, sessions, requests); --force locks any name,\ne.g. before their first login. The audit log records the actor as\nadmin:NAME (--by, default: your OS account).",
			"gatehouse lock --config gatehouse.yaml --user bob --reason 'investigation' --ttl 24h"},
		"unlock": {"gatehouse unlock --config FILE --user NAME [--by NAME]",
			"Remove a user's lock. Grants and requests the lock ended stay ended.",
			"gatehouse unlock --config gatehouse.yaml --user bob"},
		"bot": {"gatehouse bot add|ls|rm --config FILE [flags]",
			"Subcommands:\n  add   create an API identity and print its token\n  ls    list bots\n  rm    remove a bot; its tokens stop working",
			"gatehouse bot add --config gatehouse.yaml --name slack --roles slack-plugin"},
		"bot add": {"gatehouse bot add --config FILE --name NAME --roles R[,R] [--ttl 720h]",
			"Create bot:NAME with the given roles and print `token: TOKEN` (shown only now).",
			"gatehouse bot add --config gatehouse.yaml --name slack --roles slack-plugin"},
		"bot ls": {"gatehouse bot ls --config FILE",
			"List bots, their roles and who created them.",
			"gatehouse bot ls --config gatehouse.yaml"},
		"bot rm": {"gatehouse bot rm --config FILE --name NAME",
			"Remove a bot; its tokens no longer work.",
			"gatehouse bot rm --config gatehouse.yaml --name slack"},
		"request": {"gatehouse request create|ls|show|approve|deny|cancel|drop [ID] [flags]",
			"Subcommands (through the bastion's web API as you: a short-lived API token\nis obtained over SSH with the certificate from gatehouse login, or with\n--bastion/--user/--identity/--host-ca):\n  create        ask for roles\n  ls            list your requests and those you may review\n  show ID       one request, with its approval rule and what it still needs\n  approve ID    approve a request\n  deny ID       deny a request\n  cancel ID     cancel your pending request\n  drop ID       give up an approved grant early",
			"gatehouse request create --roles dba --reason 'INC-42: disk full on db-1' --duration 2h --wait"},
		"request create": {"gatehouse request create --roles R[,R] | --node NODE --login LOGIN | --labels KEY=VALUE[,KEY=VALUE] --login LOGIN --reason TEXT [--duration 2h] [--wait] [--for-session]",
			"Ask for roles, or (--node with --login) for one login on one node only, or (--labels\nwith --login) for one login on every node with all those labels; prints the\nrequest's id as `id: ID`. --wait waits for the decision. --for-session makes the grant\nend when the first session that uses it ends (some roles require it).",
			"gatehouse request create --node db-1 --login postgres --reason 'INC-42: disk full' --for-session"},
		"request ls": {"gatehouse request ls",
			"List your requests and those waiting for your review, one per line, id first.",
			"gatehouse request ls"},
		"request show": {"gatehouse request show ID",
			"Show one request.",
			"gatehouse request show 7q3k9x2m4d"},
		"request approve": {"gatehouse request approve ID [--roles R[,R]] [--reason TEXT]",
			"Approve a request (you may not approve your own). --roles approves only some of the\nrequested roles; the grant holds only the roles whose approvals meet the rule.\n--reason is required when a requested role sets options.review_reason_required.",
			"gatehouse request approve 7q3k9x2m4d --reason 'checked INC-42'"},
		"request deny": {"gatehouse request deny ID [--reason TEXT]",
			"Deny a request.",
			"gatehouse request deny 7q3k9x2m4d --reason 'use the runbook'"},
		"request cancel": {"gatehouse request cancel ID",
			"Cancel your own pending request.",
			"gatehouse request cancel 7q3k9x2m4d"},
		"request drop": {"gatehouse request drop ID",
			"End your approved grant before it runs out.",
			"gatehouse request drop 7q3k9x2m4d"},
		"login": {"gatehouse login --proxy URL [--headless]",
			"Log in with OIDC in the browser and get a short-lived SSH certificate in\n~/.gatehouse/ (added to the ssh-agent if one runs).",
			"gatehouse login --proxy https://bastion.example.com"},
		"logout": {"gatehouse logout [--proxy URL]",
			"Revoke the certificate from gatehouse login and delete the key, certificate\nand login record from ~/.gatehouse/.",
			"gatehouse logout"},
		"plugin": {"gatehouse plugin slack|jira --config FILE",
			"Subcommands:\n  slack   post requests to a Slack channel; Approve/Deny buttons review on behalf of the clicker\n  jira    open a Jira issue per request; a status change reviews on behalf of the mover",
			"gatehouse plugin slack --config slack.yaml"},
		"plugin slack": {"gatehouse plugin slack --config FILE",
			"Run the Slack plugin: an API client of the bastion with a bot token\n(review_on_behalf), serving POST /slack/interactions.",
			"gatehouse plugin slack --config slack.yaml"},
		"plugin jira": {"gatehouse plugin jira --config FILE",
			"Run the Jira plugin: an API client of the bastion with a bot token\n(review_on_behalf), serving POST /jira/webhook.",
			"gatehouse plugin jira --config jira.yaml"},
		"doctor": {"gatehouse doctor --config FILE",
			"Check the config and roles, the store, the recording storage, the OIDC\nissuer and every node; one line per check, exit 0 only if all pass.",
			"gatehouse doctor --config /etc/gatehouse/gatehouse.yaml"},
		"dev-idp": {"gatehouse dev-idp --users FILE --client-secret SECRET --redirect URL... [--listen ADDR] [--issuer URL] [--client-id ID] [--fat-id-tokens]",
			"Run a local OpenID provider for trying Gatehouse out (development only).\nThe bastion's oidc: section names it as issuer, with the same client id and\nsecret; each --redirect is a callback URL of the bastion's web UI.",
			"gatehouse dev-idp --users configs/dev-users.yaml --client-secret s3cret --redirect http://127.0.0.1:8080/oidc/callback"},
		"version": {"gatehouse version",
			"Print the version.",
			"gatehouse version"},
	}
}

// printHelp writes the help of cmd ("audit ls") and, when fs is set, its flags.
func printHelp(w io.Writer, cmd string, fs *flag.FlagSet) {
	h, ok := helps()[cmd]
	if !ok {
		h = helpText{usage: "gatehouse " + cmd + " [flags]"}
	}
	fmt.Fprintf(w, "usage: %s\n", h.usage)
	if h.about != "" {
		fmt.Fprintf(w, "\n%s\n", h.about)
	}
	if fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	if h.example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", h.example)
	}
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: gatehouse COMMAND [SUBCOMMAND] [ARGS] [flags]")
	fmt.Fprintln(w, "\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun `gatehouse help COMMAND` or `gatehouse COMMAND --help` for a command's usage.")
	fmt.Fprintln(w, "\nExample:\n  gatehouse audit ls --config gatehouse.yaml --type request --since 2h")
}

// wantsHelp reports whether args ask for help (before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// subcommand takes the subcommand of group out of args: the first argument
// that names one of subs. Without one it prints the group's help (asked
// for) or returns a usage error.
func subcommand(group string, args []string, stderr io.Writer, subs ...string) (string, []string, error) {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, s := range subs {
			if a == s {
				rest := append(append([]string{}, args[:i]...), args[i+1:]...)
				return s, rest, nil
			}
		}
	}
	printHelp(stderr, group, nil)
	if wantsHelp(args) {
		return "", nil, flag.ErrHelp
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return "", nil, shownUsageError{fmt.Sprintf("unknown %s command %q (want %s)", group, args[0], strings.Join(subs, ", "))}
	}
	return "", nil, shownUsageError{fmt.Sprintf("missing %s command (want %s)", group, strings.Join(subs, ", "))}
}

// shownUsageError is bad input whose usage was already printed (exit 2).
type shownUsageError struct{ msg string }

func (e shownUsageError) Error() string { return e.msg }
