package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// SystemPython is Debian's interpreter, the one python3-paramiko and
// python3-asyncssh are installed for. A python3 earlier on PATH (pyenv) may
// be another interpreter without them.
const SystemPython = "/usr/bin/python3"

// RequirePython fails the test unless SystemPython imports every module.
// It fails rather than skips: .ci/run installs them, so a missing module is
// a broken machine, and a skipped client test would pass in silence.
func RequirePython(t testing.TB, modules ...string) {
	t.Helper()
	RequireSystem(t)
	for _, m := range modules {
		out, err := exec.Command(SystemPython, "-c", "import "+m).CombinedOutput()
		if err != nil {
			t.Fatalf("%s cannot import %s (%v: %s); run .ci/run setup", SystemPython, m, err, strings.TrimSpace(string(out)))
		}
	}
}

// RequireProgram fails the test unless name is on PATH (see RequirePython
// for why it does not skip).
func RequireProgram(t testing.TB, name string) string {
	t.Helper()
	RequireSystem(t)
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (%v); run .ci/run setup", name, err)
	}
	return p
}

// PlainHostKey is the bastion's host key ("ssh-ed25519 AAAA..."): the key
// inside every host certificate it presents, for itself and for the nodes
// behind it. Clients that do not verify host certificates (Paramiko) pin it.
func (g *Gatehouse) PlainHostKey() string {
	g.t.Helper()
	line := g.plainHostKey()
	_, key, ok := strings.Cut(line, " ")
	if !ok {
		g.t.Fatalf("the bastion at %s offers no plain host key", g.SSHAddr)
	}
	return key
}

// Exec runs any program (a third-party client) to completion under the
// client's timeout, in its own process group, with env added to the
// environment. An ssh-agent of the caller is hidden from it, so the
// program authenticates only with what the test hands it.
func (c *Client) Exec(env []string, name string, args ...string) Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.Dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	c.own(cmd)
	return c.run(cmd, nil)
}
