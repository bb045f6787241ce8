package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a long-running child (sshd, gatehouse serve) whose combined
// output goes to a log file that is dumped into the test log if the test
// fails. It is stopped in t.Cleanup whatever happens.
type Process struct {
	Name    string // for messages: "sshd db-1", "gatehouse"
	LogPath string

	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error
	stopOnce sync.Once
}

// startProcess starts cmd with its output in logPath and registers cleanups
// that stop it and, if the test failed, print its log.
func startProcess(t testing.TB, name, logPath string, cmd *exec.Cmd) *Process {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log for %s: %v", name, err)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group, so stopping it also stops whatever it spawned
	// that stayed in the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	// Registered before the stop cleanup so it runs after it (cleanups are
	// LIFO) and shows the complete log, including shutdown messages.
	t.Cleanup(func() {
		if t.Failed() {
			dumpLog(t, name, logPath)
		}
	})
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s (%s): %v", name, strings.Join(cmd.Args, " "), err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop(t)
		// A -race build reports races on stderr and carries on; without
		// this check they would pass unnoticed.
		if data, err := os.ReadFile(logPath); err == nil && strings.Contains(string(data), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race (see its log)", name)
		}
	})
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error {
	if done, _ := p.Exited(); done {
		return fmt.Errorf("signal %s: already exited", p.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// Stop sends SIGTERM to the process and its descendants, waits for it to
// exit, and kills everything left after a grace period. Safe to call more
// than once.
func (p *Process) Stop(t testing.TB) {
	p.stopOnce.Do(func() {
		if done, _ := p.Exited(); done {
			return
		}
		pid := p.Pid()
		// Collect descendants first: sshd puts each connection in its own
		// session, so the process group alone misses them.
		kids := Descendants(pid)
		signalGroup(p.cmd.Process, syscall.SIGTERM)
		for _, k := range kids {
			k.signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			// A Go program prints every goroutine's stack on SIGQUIT,
			// which lands in the log dumped on failure: the answer to
			// "where is shutdown stuck".
			t.Errorf("%s (pid %d) did not exit 15s after SIGTERM; sending SIGQUIT, then SIGKILL (its log has the stacks)", p.Name, pid)
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				signalGroup(p.cmd.Process, syscall.SIGKILL)
				<-p.done
			}
		}
		for _, k := range kids {
			k.signal(syscall.SIGKILL)
		}
	})
}

func dumpLog(t testing.TB, name, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("=== %s log %s: %v", name, path, err)
		return
	}
	const max = 64 << 10
	if len(data) > max {
		data = append([]byte("...(earlier output cut)...\n"), data[len(data)-max:]...)
	}
	t.Logf("=== %s log (%s) ===\n%s\n=== end of %s log ===", name, path, data, name)
}

// ProcInfo names a running process.
type ProcInfo struct {
	PID     int
	Cmdline string
	start   string // start time in clock ticks since boot, from /proc/PID/stat
}

// signal sends sig to the process if it is still the one that was listed.
// PIDs are recycled quickly on a busy machine (pid_max is often 32768), and
// a signal to a recycled PID would hit some other program.
func (p ProcInfo) signal(sig syscall.Signal) {
	if _, start, ok := procStat(p.PID); ok && start == p.start {
		_ = syscall.Kill(p.PID, sig)
	}
}

// Descendants lists the living descendants of pid, found through /proc.
func Descendants(pid int) []ProcInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]ProcInfo{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, start, ok := procStat(p); ok {
			children[pp] = append(children[pp], ProcInfo{PID: p, start: start})
		}
	}
	var out []ProcInfo
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			c.Cmdline = cmdline(c.PID)
			out = append(out, c)
			queue = append(queue, c.PID)
		}
	}
	return out
}

// procStat returns a living process's parent PID and start time.
func procStat(pid int) (ppid int, start string, ok bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", false
	}
	// The command name is in parentheses and may contain spaces, so parse
	// after the last ')': "state ppid ... starttime" (starttime is field 22
	// of the whole line, index 19 after the name).
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" {
		return 0, "", false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, f[19], err == nil
}

func cmdline(pid int) string {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// FreePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the caller binds it; on a test machine that is
// rare enough to accept.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitForPort waits until addr accepts TCP connections, failing early if
// the process serving it exits.
func waitForPort(ctx context.Context, addr string, p *Process) error {
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited before listening on %s: %v", p.Name, addr, err)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w", p.Name, addr, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
