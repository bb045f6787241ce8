// Command gatehouse is the Gatehouse bastion and its command-line tools. It
// parses flags and calls the packages that do the work; it holds no logic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// exitCode carries a specific exit status out of a command.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// usageError marks bad input (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {"run the bastion (SSH + web)", runServe},
		"ca":       {"ca export user|host: print a CA public key", runCA},
		"cert":     {"cert issue: sign a user certificate without OIDC", runCert},
		"policy":   {"policy check: explain a policy decision", runPolicy},
		"audit":    {"audit verify|ls: check and search the audit log", runAudit},
		"sessions": {"sessions ls|export: list and export recordings", runSessions},
		"play":     {"play SESSION_ID: replay a recording in the terminal", runPlay},
		"lock":     {"lock a user", runLock},
		"unlock":   {"unlock a user", runUnlock},
		"bot":      {"bot add|ls|rm: API identities and tokens for plugins", runBot},
		"plugin":   {"plugin slack|jira: relay access requests to Slack or Jira through the API", runPlugin},
		"request":  {"request create|ls|show|approve|deny|cancel|drop: access requests", runRequest},
		"login":    {"log in through the bastion and get a certificate", runLogin},
		"logout":   {"revoke the certificate from gatehouse login", runLogout},
		"doctor":   {"check the config, store, recordings, OIDC issuer and every node", runDoctor},
		"dev-idp":  {"run a local OpenID provider for trying Gatehouse out (development only)", runDevIDP},
		"version":  {"print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || (args[0] == "help" && len(args) == 1) {
		usage(stdout, cmds)
		return 0
	}
	if args[0] == "help" {
		// gatehouse help CMD [SUB] is gatehouse CMD [SUB] --help.
		args = append(append([]string{}, args[1:]...), "--help")
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	if wantsHelp(args[1:]) {
		// Asked-for help goes to stdout, so it can be paged.
		stderr = stdout
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	var ec exitCode
	var ue usageError
	var shown shownUsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		return int(ec)
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &shown):
		fmt.Fprintf(stderr, "gatehouse %s: %s\n", args[0], shown.msg)
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "gatehouse %s: %s\n", args[0], ue.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", args[0], err)
		return 1
	}
}

// newFlags returns a flag set that reports errors as usage errors.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(fs.Output(), name, fs) }
	if w, ok := stderr.(flagSetWatcher); ok {
		w.watchFlagSet(fs)
	}
	return fs
}

// flagSetWatcher is a writer that wants every flag set a command makes:
// TestHelpEveryCommand checks that help lists each flag, which it cannot
// learn from the help text itself.
type flagSetWatcher interface{ watchFlagSet(*flag.FlagSet) }

// parse parses flags anywhere among args (flags may follow positional
// arguments, as in `gatehouse play ID --speed 2`).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			// The flag package has printed the error and the usage.
			return nil, shownUsageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "./gatehouse.yaml", "path to gatehouse.yaml")
}

func needArgs(pos []string, n int, what string) error {
	if len(pos) != n {
		return usageError{fmt.Sprintf("expected %s", what)}
	}
	return nil
}

func oneOf(s string, opts ...string) bool {
	for _, o := range opts {
		if strings.EqualFold(s, o) {
			return true
		}
	}
	return false
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	fmt.Fprintln(stdout, "gatehouse dev")
	return nil
}
