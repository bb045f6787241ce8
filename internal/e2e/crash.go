package e2e

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Kill sends SIGKILL to `gatehouse serve` (a crash: no shutdown code runs,
// nothing is flushed or closed) and waits until it is gone. Its nodes keep
// running.
func (g *Gatehouse) Kill() {
	g.t.Helper()
	if err := g.proc.Signal(syscall.SIGKILL); err != nil {
		g.t.Fatalf("kill -9 gatehouse: %v", err)
	}
	select {
	case <-g.proc.done:
	case <-time.After(30 * time.Second):
		g.t.Fatalf("gatehouse (pid %d) still running 30s after SIGKILL", g.proc.Pid())
	}
}

// Restart starts `gatehouse serve` again with the same config, data
// directory and addresses after Stop or Kill, and waits until its SSH
// listener accepts. Its output is appended to the same LogPath.
func (g *Gatehouse) Restart() {
	g.t.Helper()
	if done, _ := g.proc.Exited(); !done {
		g.t.Fatal("Restart: gatehouse is still running; Stop or Kill it first")
	}
	args := append([]string{"serve", "--config", g.ConfigPath}, g.opts.ExtraArgs...)
	cmd := exec.Command(g.Binary, args...)
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(), g.opts.Env...)
	g.proc = startProcess(g.t, "gatehouse", g.LogPath, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitForPort(ctx, g.SSHAddr, g.proc); err != nil {
		g.t.Fatalf("Restart: %v", err)
	}
}
