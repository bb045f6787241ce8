package proxy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// bastionSession answers `ssh bob@bastion [CMD]`: the bastion's own
// commands. No shell is ever started on the bastion.
func (s *Server) bastionSession(sess gliderssh.Session) {
	conn, _ := sess.Context().Value(gliderssh.ContextKeyConn).(*ssh.ServerConn)
	id, ok := identityOf(conn)
	if !ok {
		fmt.Fprintln(sess.Stderr(), "gatehouse: not authenticated")
		_ = sess.Exit(1)
		return
	}
	ctx := sess.Context()
	args := sess.Command()
	// Every command escapes the fields it prints (termsafe); these writers
	// are the net under them: whatever still holds a control character,
	// a bidi override or invalid UTF-8 is escaped before it leaves, and
	// only the newline (made \r\n on a pty) passes.
	outSafe := termsafe.NewWriter(newlineWriter{w: sess, crlf: isPty(sess)})
	errSafe := termsafe.NewWriter(newlineWriter{w: sess.Stderr(), crlf: isPty(sess)})
	defer func() { _ = outSafe.Flush(); _ = errSafe.Flush() }()
	out, errw := io.Writer(outSafe), io.Writer(errSafe)
	if err := s.opt.Authorizer.Admit(ctx, id); err != nil {
		fmt.Fprintf(errw, "gatehouse: %s\n", err)
		_ = errSafe.Flush()
		_ = sess.Exit(1)
		return
	}
	if len(args) == 0 {
		s.banner(ctx, id, out)
		_ = outSafe.Flush()
		_ = sess.Exit(0)
		return
	}
	s.audit(ctx, storage.Event{Type: audit.TypeExec, Actor: id.User, Target: "bastion", Fields: map[string]any{"command": strings.Join(args, " ")}})
	code := s.runCommand(ctx, id, args, sess, out, errw)
	_ = outSafe.Flush()
	_ = errSafe.Flush()
	_ = sess.Exit(code)
}

func isPty(sess gliderssh.Session) bool {
	_, _, ok := sess.Pty()
	return ok
}

// newlineWriter turns \n into \r\n on a terminal in raw mode.
type newlineWriter struct {
	w    io.Writer
	crlf bool
}

func (n newlineWriter) Write(p []byte) (int, error) {
	if !n.crlf {
		return n.w.Write(p)
	}
	_, err := n.w.Write([]byte(strings.ReplaceAll(string(p), "\n", "\r\n")))
	return len(p), err
}

func (s *Server) runCommand(ctx context.Context, id Identity, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch args[0] {
	case "whoami":
		return s.whoami(ctx, id, stdout, stderr)
	case "nodes":
		return s.nodes(ctx, id, stdout, stderr)
	case "help", "--help", "-h":
		s.help(stdout)
		return 0
	}
	if cmd, ok := s.opt.Commands[args[0]]; ok {
		return cmd(ctx, id, args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %s; try: ssh bastion help\n", termsafe.Quote(args[0]))
	return 2
}

func (s *Server) help(w io.Writer) {
	names := []string{"whoami", "nodes"}
	for n := range s.opt.Commands {
		names = append(names, n)
	}
	sort.Strings(names[2:])
	fmt.Fprintf(w, "Gatehouse bastion commands: %s\n", strings.Join(names, ", "))
	fmt.Fprintf(w, "Connect to a node with: ssh -J USER@BASTION LOGIN@NODE\n")
}

func (s *Server) whoami(ctx context.Context, id Identity, stdout, stderr io.Writer) int {
	desc, err := s.opt.Authorizer.Describe(ctx, id)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse: cannot look up your roles right now\n")
		s.log.Error("describe", "user", id.User, "err", err)
		return 1
	}
	fmt.Fprintf(stdout, "user: %s\n", termsafe.String(id.User))
	fmt.Fprintf(stdout, "authenticated by: %s\n", id.Method)
	fmt.Fprint(stdout, desc)
	return 0
}

func (s *Server) nodes(ctx context.Context, id Identity, stdout, stderr io.Writer) int {
	na, err := s.opt.Authorizer.Nodes(ctx, id, s.opt.Nodes)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse: cannot look up your access right now\n")
		s.log.Error("nodes", "user", id.User, "err", err)
		return 1
	}
	if len(na) == 0 {
		fmt.Fprintln(stdout, "You may not reach any node right now. Request a role with: ssh bastion request ROLE --reason TEXT")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tLOGINS\tLABELS")
	for _, n := range na {
		// Logins may come from claims ({{claims.unix_login}}).
		fmt.Fprintf(tw, "%s\t%s\t%s\n", termsafe.String(n.Node.Name), strings.Join(termsafe.Strings(n.Logins), ","), termsafe.String(labelString(n.Node.Labels)))
	}
	return boolExit(tw.Flush() == nil)
}

func boolExit(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// banner is what an interactive `ssh bob@bastion` shows.
func (s *Server) banner(ctx context.Context, id Identity, w io.Writer) {
	fmt.Fprintf(w, "Gatehouse bastion\n\n")
	if s.whoami(ctx, id, w, w) != 0 {
		return
	}
	fmt.Fprintln(w)
	if s.nodes(ctx, id, w, w) != 0 {
		return
	}
	host := s.opt.Address
	fmt.Fprintf(w, "\nConnect with: ssh -J %s@%s LOGIN@NODE\n", termsafe.String(id.User), host)
}
