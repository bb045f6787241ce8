package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartJiraPlugin runs `gatehouse plugin jira --config configPath` with the
// bastion's binary, in the bastion's directory, and waits until it listens
// on listen (the config's listen address). Its log is dumped if the test
// fails; it stops when the test ends, or earlier with Process.Stop. Each
// call appends to the same log file, so a restarted plugin's log follows
// the first one's.
func StartJiraPlugin(t testing.TB, g *Gatehouse, configPath, listen string) *Process {
	t.Helper()
	cmd := exec.Command(g.Binary, "plugin", "jira", "--config", configPath)
	cmd.Dir = g.Dir
	p := startProcess(t, "gatehouse plugin jira", filepath.Join(g.Dir, "plugin-jira.log"), cmd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitForPort(ctx, listen, p); err != nil {
		t.Fatal(err)
	}
	return p
}
