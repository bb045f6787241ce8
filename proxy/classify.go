package proxy

import "strings"

// Session kinds, as the session index and the audit log name them.
const (
	kindShell     = "shell"
	kindExec      = "exec"
	kindSubsystem = "subsystem" // any subsystem but a plain sftp one
	kindSFTP      = "sftp"
	kindSCP       = "scp"
	kindRsync     = "rsync"
)

// classify decides how a session is recorded from protocol facts only:
// the request type, the subsystem name or the exec command line, and
// whether a pty was requested. Nothing the user can make look like
// something else may change the treatment, so:
//
//   - a session with a pty is a terminal session whatever it runs: it is
//     always recorded in full (a pty shell behind `scp; bash -i` is a shell);
//   - a transfer is recognised by its protocol: the sftp subsystem, or an exec
//     whose whole command line is exactly an scp or rsync server invocation
//     (strictly tokenised: a shell metacharacter, a quote, a glob or a second
//     command makes it an ordinary exec);
//   - everything else is an ordinary session.
//
// Misjudging a real transfer as an exec costs a cast next to the raw bytes;
// misjudging a shell as a transfer would hide it, hence the strictness.
func classify(reqType, command string, pty bool) string {
	switch reqType {
	case "shell":
		return kindShell
	case "subsystem":
		if command == "sftp" && !pty {
			return kindSFTP
		}
		return kindSubsystem
	}
	if pty || reqType != "exec" {
		return kindExec
	}
	words, ok := serverWords(command)
	if !ok || len(words) < 2 {
		return kindExec
	}
	switch {
	case words[0] == "scp" && isSCPServerArgs(words[1:]):
		return kindSCP
	case words[0] == "rsync" && isRsyncServerArgs(words[1:]):
		return kindRsync
	}
	return kindExec
}

// serverWords splits a command line on spaces. It refuses (ok=false) any
// line a shell would read as more than plain words: every byte must be a
// letter, a digit, a space or one of a few punctuation marks that no POSIX
// shell gives a meaning to inside or at the start of a word. Tabs,
// newlines, quotes, backslashes, globs, expansions, redirections,
// separators, comments and non-ASCII bytes all refuse.
func serverWords(command string) ([]string, bool) {
	for i := 0; i < len(command); i++ {
		if c := command[i]; c != ' ' && !plainByte(c) {
			return nil, false
		}
	}
	return strings.Fields(command), true
}

// plainByte: letters, digits and - _ . / , + = : @ %. Tilde is left out:
// expanded at the start of a word, it is harmless but not plain.
func plainByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-_./,+=:@%", c) >= 0
}

// isSCPServerArgs accepts what OpenSSH's scp sends to the remote scp in
// its legacy protocol: flags from -d -r -p -v and exactly one of -t (to
// the node) or -f (from it), an optional "--", then exactly one path.
func isSCPServerArgs(args []string) bool {
	to, from := false, false
	i := 0
	for ; i < len(args) && len(args[i]) > 1 && args[i][0] == '-' && args[i] != "--"; i++ {
		for _, c := range args[i][1:] {
			switch c {
			case 't':
				to = true
			case 'f':
				from = true
			case 'd', 'r', 'p', 'v':
			default:
				return false
			}
		}
	}
	if i < len(args) && args[i] == "--" {
		i++
	}
	// The path may start with '-' only after "--".
	return to != from && i == len(args)-1 && (args[i][0] != '-' || args[i-1] == "--")
}

// isRsyncServerArgs accepts `--server [--sender] FLAGS [--long[=value]]...
// . PATH...` as rsync's client sends it. The daemon mode (--daemon, and
// --config naming a daemon config that can run commands) is an ordinary
// session.
func isRsyncServerArgs(args []string) bool {
	if len(args) < 3 || args[0] != "--server" {
		return false
	}
	i := 1
	for ; i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-"; i++ {
		name, _, _ := strings.Cut(args[i], "=")
		switch name {
		case "--daemon", "--config", "--dparam", "--":
			return false
		}
	}
	// The "." that stands for the sender's working directory, then at
	// least one path.
	return i+1 < len(args) && args[i] == "."
}

func isTransfer(kind string) bool { return kind == kindSFTP || kind == kindSCP || kind == kindRsync }

// transferDirection reads scp's -t (to node) / -f (from node) and rsync's
// --sender flag. It is only asked about commands classify accepted.
func transferDirection(kind, command string) string {
	f := strings.Fields(command)
	switch kind {
	case kindSCP:
		for _, a := range f {
			if a == "--" {
				break
			}
			if !strings.HasPrefix(a, "-") {
				continue
			}
			if strings.Contains(a, "t") {
				return "upload"
			}
			if strings.Contains(a, "f") {
				return "download"
			}
		}
	case kindRsync:
		for _, a := range f {
			if a == "--sender" {
				return "download"
			}
		}
		return "upload"
	}
	return "both"
}
