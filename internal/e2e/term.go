package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// Term is a client program running under a pseudo-terminal, driven like a
// person at a keyboard: Send keystrokes, Expect output, Resize the window.
type Term struct {
	cmd  *exec.Cmd
	pty  *os.File
	t    testing.TB
	done chan struct{} // closed when the program has exited
	err  error         // Wait's error, valid after done

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever buf grows or reading stops
	buf     []byte        // output not yet consumed by Expect
	all     []byte        // everything ever read
	readErr error
}

// Interactive starts `ssh -tt -F cfg [-J jump] args...` under a 24x80 pty.
func (c *Client) Interactive(args ...string) *Term {
	c.t.Helper()
	return c.StartTerm(24, 80, "ssh", append([]string{"-tt"}, args...)...)
}

// StartTerm starts prog with the client's options and args under a pty of
// rows x cols.
func (c *Client) StartTerm(rows, cols uint16, prog string, args ...string) *Term {
	c.t.Helper()
	cmd := exec.Command(prog, append(c.SSHArgs(), args...)...)
	return StartTerm(c.t, cmd, rows, cols)
}

// StartTerm starts cmd under a new pty of rows x cols. The program becomes a
// session leader with the pty as its controlling terminal, so window size
// changes reach it as SIGWINCH. It is killed when the test ends.
func StartTerm(t testing.TB, cmd *exec.Cmd, rows, cols uint16) *Term {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatalf("start %v under a pty: %v", cmd.Args, err)
	}
	tm := &Term{cmd: cmd, pty: f, t: t, done: make(chan struct{}), changed: make(chan struct{})}
	go tm.readLoop()
	go func() {
		tm.err = cmd.Wait()
		close(tm.done)
	}()
	t.Cleanup(func() {
		tm.Close()
		if t.Failed() {
			t.Logf("=== terminal output of %v ===\n%q\n=== end ===", cmd.Args, tm.Output())
		}
	})
	return tm
}

func (tm *Term) readLoop() {
	b := make([]byte, 32<<10)
	for {
		n, err := tm.pty.Read(b)
		tm.mu.Lock()
		tm.buf = append(tm.buf, b[:n]...)
		tm.all = append(tm.all, b[:n]...)
		if err != nil {
			tm.readErr = err
		}
		close(tm.changed)
		tm.changed = make(chan struct{})
		tm.mu.Unlock()
		if err != nil {
			// On Linux the pty master reads EIO once the program and all
			// holders of the slave side are gone.
			return
		}
	}
}

// Send types s into the terminal.
func (tm *Term) Send(s string) {
	tm.t.Helper()
	if _, err := tm.pty.Write([]byte(s)); err != nil {
		tm.t.Fatalf("type %q into the terminal: %v", s, err)
	}
}

// Expect waits until the unread output matches re, consumes it up to the end
// of the match and returns the match and its submatches. It fails the test
// if the output does not match within timeout or the terminal closes first.
func (tm *Term) Expect(re *regexp.Regexp, timeout time.Duration) []string {
	tm.t.Helper()
	m, err := tm.expect(re, timeout)
	if err != nil {
		tm.t.Fatalf("%v", err)
	}
	return m
}

// TryExpect is Expect that returns an error instead of failing the test.
func (tm *Term) TryExpect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	return tm.expect(re, timeout)
}

func (tm *Term) expect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		tm.mu.Lock()
		loc := re.FindSubmatchIndex(tm.buf)
		if loc != nil {
			var m []string
			for i := 0; i < len(loc); i += 2 {
				if loc[i] < 0 {
					m = append(m, "")
					continue
				}
				m = append(m, string(tm.buf[loc[i]:loc[i+1]]))
			}
			tm.buf = tm.buf[loc[1]:]
			tm.mu.Unlock()
			return m, nil
		}
		changed, readErr, pending := tm.changed, tm.readErr, string(tm.buf)
		tm.mu.Unlock()
		if readErr != nil {
			return nil, fmt.Errorf("terminal closed (%v) before output matched %q; unread output: %q", readErr, re, pending)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("output did not match %q within %v; unread output: %q", re, timeout, pending)
		}
	}
}

// Output is everything the program has written to the terminal so far.
func (tm *Term) Output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return string(tm.all)
}

// Resize changes the window size; the kernel sends the program SIGWINCH.
func (tm *Term) Resize(rows, cols uint16) {
	tm.t.Helper()
	if err := pty.Setsize(tm.pty, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		tm.t.Fatalf("resize terminal to %dx%d: %v", rows, cols, err)
	}
}

// Wait waits up to timeout for the program to exit and returns its exit
// code (-1 if it was killed by a signal). It fails the test on timeout.
func (tm *Term) Wait(timeout time.Duration) int {
	tm.t.Helper()
	select {
	case <-tm.done:
	case <-time.After(timeout):
		tm.t.Fatalf("%v still running %v after we waited for it; output: %q", tm.cmd.Args, timeout, tm.Output())
	}
	return exitCode(tm.err)
}

// Close kills the program if it still runs and releases the pty.
func (tm *Term) Close() {
	select {
	case <-tm.done:
	default:
		// pty.Start made it a session and process group leader.
		killGroup(tm.cmd.Process)
		<-tm.done
	}
	_ = tm.pty.Close()
}

// Done is closed when the program has exited.
func (tm *Term) Done() <-chan struct{} { return tm.done }
