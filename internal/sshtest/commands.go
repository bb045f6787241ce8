package sshtest

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Run is the node's stand-in for a shell running an exec request as
// login. cmd is one or more commands separated by ";", each optionally
// prefixed by "exec"; the exit status is the last one's. There is no
// quoting, no pipes and no redirection. The commands:
//
//	echo WORDS...   print the words and a newline
//	id -un          print the login
//	cat             copy standard input to standard output
//	sleep SECONDS   wait (ends early when the session does)
//	yes             print "y" lines until the output is closed
//	true, false     exit 0, exit 1
//	exit N          exit N
//
// Anything else prints an error on stderr and exits 127.
func Run(ctx context.Context, login, cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	code := 0
	for part := range strings.SplitSeq(cmd, ";") {
		args := strings.Fields(part)
		if len(args) > 0 && args[0] == "exec" {
			args = args[1:]
		}
		if len(args) == 0 {
			continue
		}
		code = run1(ctx, login, args, stdin, stdout, stderr)
		if ctx.Err() != nil {
			return 130
		}
	}
	return code
}

func run1(ctx context.Context, login string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch name, rest := args[0], args[1:]; {
	case name == "echo":
		if _, err := fmt.Fprintln(stdout, strings.Join(rest, " ")); err != nil {
			return 1
		}
		return 0
	case name == "id" && len(rest) == 1 && rest[0] == "-un":
		fmt.Fprintln(stdout, login)
		return 0
	case name == "cat" && len(rest) == 0:
		if _, err := io.Copy(stdout, stdin); err != nil {
			return 1
		}
		return 0
	case name == "sleep" && len(rest) == 1:
		s, err := strconv.ParseFloat(rest[0], 64)
		if err != nil {
			fmt.Fprintf(stderr, "sleep: invalid time interval %q\n", rest[0])
			return 1
		}
		t := time.NewTimer(time.Duration(s * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
			return 0
		case <-ctx.Done():
			return 130
		}
	case name == "yes" && len(rest) == 0:
		line := []byte(strings.Repeat("y\n", 512))
		for ctx.Err() == nil {
			if _, err := stdout.Write(line); err != nil {
				return 1
			}
		}
		return 130
	case name == "true":
		return 0
	case name == "false":
		return 1
	case name == "exit" && len(rest) == 1:
		n, err := strconv.Atoi(rest[0])
		if err != nil {
			return 2
		}
		return n
	}
	fmt.Fprintf(stderr, "sshtest: %s: command not found\n", strings.Join(args, " "))
	return 127
}
