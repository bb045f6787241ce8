package bench

import (
	"os/exec"
	"testing"
	"time"
)

// A forking server's CPU must include the connections that came and went:
// a child that burned CPU and exited counts in the parent that reaped it.
func TestTreeTicksCountsExitedChildren(t *testing.T) {
	// The parent forks a child that spins for about 300 ms of CPU, reaps
	// it, and then idles.
	cmd := exec.Command("sh", "-c", `sh -c 'end=$(($(date +%s%N) + 300000000)); while [ $(date +%s%N) -lt $end ]; do :; done'; echo done; exec sleep 30`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil {
		t.Fatalf("wait for the child: %v", err)
	}
	self, reaped, err := statTicks(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// The busy loop forks date often; all of it ran in descendants.
	if reaped < ticksPerSecond/10 {
		t.Errorf("reaped children's CPU = %d ticks, want at least %d", reaped, ticksPerSecond/10)
	}
	if got := treeTicks(cmd.Process.Pid); got < self+reaped {
		t.Errorf("treeTicks = %d, less than the parent's own %d plus its reaped children's %d", got, self, reaped)
	}
	r0 := readCPU(0, cmd.Process.Pid)
	time.Sleep(200 * time.Millisecond)
	share := readCPU(0, cmd.Process.Pid).since(r0)
	if share.Node > 0.2 {
		t.Errorf("an idle process tree used %.2f cores", share.Node)
	}
}
