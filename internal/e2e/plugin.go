package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartPlugin runs `gatehouse plugin KIND --config cfgPath` with this
// bastion's binary and waits until it listens on listenAddr. Its output is
// appended to plugin-KIND.log in the bastion's directory (one log across
// restarts); stopping it is registered as a cleanup.
func (g *Gatehouse) StartPlugin(t testing.TB, kind, cfgPath, listenAddr string) *Process {
	t.Helper()
	cmd := exec.Command(g.Binary, "plugin", kind, "--config", cfgPath)
	cmd.Dir = g.Dir
	p := startProcess(t, "plugin "+kind, filepath.Join(g.Dir, "plugin-"+kind+".log"), cmd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitForPort(ctx, listenAddr, p); err != nil {
		t.Fatal(err)
	}
	return p
}
