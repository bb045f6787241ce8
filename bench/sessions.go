package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// shell is one interactive session: pty + shell through a jump host.
type shell struct {
	conn  *Conn
	sess  *ssh.Session
	stdin io.Writer
	out   chan []byte // stdout chunks, closed at EOF
	eofAt atomic.Int64
	// closedAt is when Session.Wait returned: the channel is gone.
	closedAt atomic.Int64
	done     chan struct{}
	pending  []byte
}

// openShell dials through j and starts an interactive login shell.
func openShell(ctx context.Context, j *Jumper) (*shell, error) {
	c, err := j.Dial(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.Inner.NewSession()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open session: %w", err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("stdin: %w", err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("stdout: %w", err)
	}
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		c.Close()
		return nil, fmt.Errorf("request pty: %w", err)
	}
	if err := s.Shell(); err != nil {
		c.Close()
		return nil, fmt.Errorf("start shell: %w", err)
	}
	sh := &shell{conn: c, sess: s, stdin: stdin, out: make(chan []byte, 64), done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				sh.out <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				sh.eofAt.Store(time.Now().UnixNano())
				close(sh.out)
				return
			}
		}
	}()
	go func() {
		_ = s.Wait()
		sh.closedAt.Store(time.Now().UnixNano())
		close(sh.done)
	}()
	return sh, nil
}

// probe types token and a newline and waits until the terminal echoes the
// token back; it returns the round trip.
func (sh *shell) probe(token string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if _, err := io.WriteString(sh.stdin, token+"\r"); err != nil {
		return 0, fmt.Errorf("type: %w", err)
	}
	tok := []byte(token)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if i := bytes.Index(sh.pending, tok); i >= 0 {
			d := time.Since(start)
			sh.pending = append(sh.pending[:0], sh.pending[i+len(tok):]...)
			return d, nil
		}
		// Keep only a tail that could start the token.
		if len(sh.pending) > len(tok) {
			sh.pending = append(sh.pending[:0], sh.pending[len(sh.pending)-len(tok):]...)
		}
		select {
		case chunk, ok := <-sh.out:
			if !ok {
				return 0, errors.New("session ended")
			}
			sh.pending = append(sh.pending, chunk...)
		case <-timer.C:
			return 0, fmt.Errorf("no echo within %s", timeout)
		}
	}
}

func (sh *shell) close() {
	_ = sh.sess.Close()
	_ = sh.conn.Close()
	go func() {
		// Drain so the reader goroutine can finish.
		for range sh.out {
		}
	}()
}

// openShells opens n shells through j, at most par at a time (the
// bastion caps connections still authenticating, and so should a fair
// test of the baseline). It returns the shells opened and the first error.
func openShells(ctx context.Context, j *Jumper, n, par int) ([]*shell, int, error) {
	shells := make([]*shell, n)
	var failures atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			sh, err := openShell(dctx, j)
			if err != nil {
				failures.Add(1)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			shells[i] = sh
		}()
	}
	wg.Wait()
	out := shells[:0]
	for _, s := range shells {
		if s != nil {
			out = append(out, s)
		}
	}
	return out, int(failures.Load()), firstErr
}

func closeShells(shells []*shell) {
	for _, s := range shells {
		s.close()
	}
}

// memoryOf is the memory the jump host holds: Gatehouse is one process;
// the baseline sshd forks per connection, so its whole tree counts.
func memoryOf(e *Env, sys System) Memory {
	if sys == Gatehouse {
		return treeMemory(e.GHPid())
	}
	return treeMemory(e.JumpPid())
}

// waitIdle waits until the jump host has no connection processes or
// sessions left from a previous step, so memory baselines are clean.
func waitIdle(ctx context.Context, e *Env, sys System) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if sys == Baseline && len(descendants(e.JumpPid())) == 0 {
			return
		}
		if sys == Gatehouse {
			// Gatehouse holds no child processes, but finishes closed
			// sessions (recordings) in the background.
			quiesce(ctx, e.GHPid(), 5*time.Minute)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ConcurrentOptions configure the concurrent sessions case.
type ConcurrentOptions struct {
	Counts   []int
	Window   time.Duration // how long every session types a line a second
	Parallel int           // sessions being opened at once
	// Profile, if set, samples Gatehouse during the typing window of the
	// largest count.
	Profile func(label string) func()
}

// Concurrent holds N interactive sessions open through each system, each
// typing a line a second, and reports the jump host's memory per session
// and the echo round trip.
func Concurrent(ctx context.Context, e *Env, o ConcurrentOptions) Section {
	const title = "3. Concurrent interactive sessions"
	t := Table{Header: []string{"sessions", "system", "opened / failed", "open time (s)", "memory idle → loaded (MiB)", "per session (KiB)", "echo p50 (ms)", "echo p99 (ms)", "probes ok / lost"}}
	var notes []string
	ratios := Table{Header: []string{"sessions", "per-session memory GH/OpenSSH", "echo p99 GH/OpenSSH"}}
	for _, n := range o.Counts {
		type res struct {
			perKiB float64
			p99    float64
		}
		got := map[System]res{}
		for _, sys := range Systems() {
			waitIdle(ctx, e, sys)
			j, err := e.Jumper(sys, BenchUser, "")
			if err != nil {
				return failed(title, err)
			}
			before := memoryOf(e, sys)
			start := time.Now()
			shells, nfail, ferr := openShells(ctx, j, n, o.Parallel)
			openTime := time.Since(start)
			if ferr != nil {
				notes = append(notes, fmt.Sprintf("%d sessions via %s: %d failed to open, first error `%v`", n, sys, nfail, ferr))
			}
			var stop func()
			if o.Profile != nil && sys == Gatehouse && n == slices.Max(o.Counts) {
				stop = o.Profile("sessions")
			}
			lat, lost := typeLines(ctx, shells, o.Window)
			if stop != nil {
				stop()
			}
			after := memoryOf(e, sys)
			closeShells(shells)
			beforeKiB, afterKiB := before.RSSKiB, after.RSSKiB
			memNote := "RSS"
			if sys == Baseline {
				// Forked processes share pages: Pss splits them fairly.
				beforeKiB, afterKiB = before.PssKiB, after.PssKiB
				memNote = fmt.Sprintf("Pss of %d procs", after.Procs)
			}
			per := 0.0
			if len(shells) > 0 {
				per = float64(afterKiB-beforeKiB) / float64(len(shells))
			}
			l := ms(lat)
			got[sys] = res{per, Percentile(l, 99)}
			t.Add(fmt.Sprint(n), sys.String(), fmt.Sprintf("%d / %d", len(shells), nfail), f1(openTime.Seconds()),
				fmt.Sprintf("%s → %s (%s)", f1(float64(beforeKiB)/1024), f1(float64(afterKiB)/1024), memNote),
				f1(per), f1(Percentile(l, 50)), f1(Percentile(l, 99)), fmt.Sprintf("%d / %d", len(l), lost))
		}
		ratios.Add(fmt.Sprint(n), ratio(got[Gatehouse].perKiB, got[Baseline].perKiB), ratio(got[Gatehouse].p99, got[Baseline].p99))
	}
	text := fmt.Sprintf("A Go client (golang.org/x/crypto/ssh) does the ProxyJump itself: SSH to the jump host with the certificate, "+
		"a direct-tcpip channel to the node, SSH over it with host verification (Gatehouse: host certificate for the node name; "+
		"OpenSSH: the node's pinned key), pty + shell. Sessions are opened %d at a time, then every session types a short shell "+
		"comment once a second (random phase) for %s; the echo round trip is from writing the line until its text comes back. "+
		"Memory is read from /proc at the end of the typing window: Gatehouse's VmRSS; for the OpenSSH jump host the Pss sum of "+
		"the sshd master and every per-connection child (their RSS sum would count shared pages many times). The node's sshd "+
		"forks per session in both cases and is not counted. The benchmark client runs on the same 2 cores and competes with "+
		"both servers for CPU.\n\n%s\n%s", o.Parallel, o.Window, t.Markdown(), ratios.Markdown())
	for _, n := range notes {
		text += "\n- " + n
	}
	return Section{Title: title, Text: text}
}

// typeLines makes every shell type a line a second for window and returns
// the echo round trips and the number of probes that got no echo.
func typeLines(ctx context.Context, shells []*shell, window time.Duration) ([]time.Duration, int) {
	var mu sync.Mutex
	var lat []time.Duration
	lost := 0
	var wg sync.WaitGroup
	end := time.Now().Add(window)
	for si, sh := range shells {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the sessions over the second, as real typists are.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
			// The first echo also waits for the shell's start-up; not a
			// measurement.
			if _, err := sh.probe(tokenFor(si, 0), 30*time.Second); err != nil {
				mu.Lock()
				lost++
				mu.Unlock()
				return
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 1; time.Now().Before(end) && ctx.Err() == nil; i++ {
				d, err := sh.probe(tokenFor(si, i), 10*time.Second)
				mu.Lock()
				if err != nil {
					lost++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	return lat, lost
}

// ConnectionRate runs workers Go clients, each doing connect → exec `true`
// → close in a loop for d, through each system and straight to the node,
// and reports the CPU each party used meanwhile.
func ConnectionRate(ctx context.Context, e *Env, workers int, d time.Duration, profile func(string) func()) Section {
	const title = "4. Connection rate"
	systems := []System{Gatehouse, Baseline, Direct}
	type result struct {
		churnResult
		rate float64
		lat  []float64
		cpu  CPUShare
	}
	res := map[System]result{}
	for _, sys := range systems {
		if sys != Direct {
			waitIdle(ctx, e, sys)
		}
		j, err := e.Jumper(sys, BenchUser, "")
		if err != nil {
			return failed(title, err)
		}
		jumpPID := 0
		switch sys {
		case Gatehouse:
			jumpPID = e.GHPid()
		case Baseline:
			jumpPID = e.JumpPid()
		}
		var stop func()
		if profile != nil && sys == Gatehouse {
			stop = profile("connect")
		}
		c0 := readCPU(jumpPID, e.NodePid())
		r := churn(ctx, j, workers, d)
		c1 := readCPU(jumpPID, e.NodePid())
		if stop != nil {
			stop()
		}
		res[sys] = result{churnResult: r, rate: float64(r.ok) / d.Seconds(), lat: ms(r.lat), cpu: c1.since(c0)}
	}
	g, b, n := res[Gatehouse], res[Baseline], res[Direct]
	t := Table{Header: []string{"", "Gatehouse", "OpenSSH jump", "node sshd direct", "ratio GH/OpenSSH", "ratio GH/direct"}}
	// ratios: 0 none, 1 GH/OpenSSH, 2 both; jumpOnly leaves the direct
	// column empty (there is no jump host).
	row := func(name string, f func(result) float64, format func(float64) string, ratios int, jumpOnly bool) {
		gr, dr, nv := "", "", format(f(n))
		if ratios > 0 {
			gr = ratio(f(g), f(b))
		}
		if ratios > 1 {
			dr = ratio(f(g), f(n))
		}
		if jumpOnly {
			nv = "—"
		}
		t.Add(name, format(f(g)), format(f(b)), nv, gr, dr)
	}
	row("sessions/s", func(r result) float64 { return r.rate }, f1, 2, false)
	t.Add("completed / errors", fmt.Sprintf("%d / %d", g.ok, g.errs), fmt.Sprintf("%d / %d", b.ok, b.errs), fmt.Sprintf("%d / %d", n.ok, n.errs), "", "")
	row("median cycle (ms)", func(r result) float64 { return Median(r.lat) }, f1, 2, false)
	row("p99 cycle (ms)", func(r result) float64 { return Percentile(r.lat, 99) }, f1, 2, false)
	row("CPU, jump host (cores)", func(r result) float64 { return r.cpu.JumpHost }, f2, 0, true)
	row("CPU, node sshd (cores)", func(r result) float64 { return r.cpu.Node }, f2, 0, false)
	row("CPU, client (cores)", func(r result) float64 { return r.cpu.Client }, f2, 0, false)
	row("CPU, everything else (cores)", func(r result) float64 { return r.cpu.Other() }, f2, 0, false)
	row(fmt.Sprintf("CPU, machine busy (cores of %d)", runtime.NumCPU()), func(r result) float64 { return r.cpu.Machine }, f2, 0, false)
	row("iowait (cores)", func(r result) float64 { return r.cpu.IOWait }, f2, 0, false)
	per := func(part func(CPUShare) float64) func(result) float64 {
		return func(r result) float64 {
			if r.rate == 0 {
				return math.NaN()
			}
			return part(r.cpu) / r.rate * 1000
		}
	}
	row("CPU per session, jump host (ms)", per(func(c CPUShare) float64 { return c.JumpHost }), f1, 1, true)
	row("CPU per session, node sshd (ms)", per(func(c CPUShare) float64 { return c.Node }), f1, 0, false)
	row("CPU per session, client (ms)", per(func(c CPUShare) float64 { return c.Client }), f1, 0, false)
	text := fmt.Sprintf("%d concurrent Go clients each loop connect → exec `true` → close for %s per system. "+
		"Through a jump host that is two handshakes (the client does the ProxyJump itself); \"node sshd direct\" is one "+
		"handshake straight to the same node sshd, with no jump host: the ceiling for this client and node on this machine, "+
		"since both jump hosts end in that sshd. "+
		"For Gatehouse every cycle is authentication, policy decision, upstream dial with a freshly signed certificate, "+
		"session index row, audit events and a recording opened and closed. "+
		"CPU is read from /proc over the window, in cores (CPU seconds per second): the jump host (Gatehouse's process, or "+
		"the OpenSSH jump sshd with every per-connection child it forked), the node sshd likewise, the client (this Go "+
		"process), and the machine as a whole; \"everything else\" is the machine minus those three (perf while Gatehouse "+
		"is profiled, other engineers' work). The client and both servers share the machine's %d cores.\n\n%s",
		workers, d, runtime.NumCPU(), t.Markdown())
	for _, sys := range systems {
		if err := res[sys].lastErr; err != nil {
			text += fmt.Sprintf("\n- last %s error: `%v`", sys, err)
		}
	}
	return Section{Title: title, Text: text}
}

type churnResult struct {
	ok, errs int64
	lat      []time.Duration
	lastErr  error
}

func churn(ctx context.Context, j *Jumper, workers int, d time.Duration) churnResult {
	var r churnResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				start := time.Now()
				err := cycle(ctx, j)
				took := time.Since(start)
				mu.Lock()
				if err != nil {
					r.errs++
					r.lastErr = err
				} else if time.Now().Before(end) {
					// Only cycles finished inside the window count.
					r.ok++
					r.lat = append(r.lat, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return r
}

func cycle(ctx context.Context, j *Jumper) error {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := j.Dial(cctx)
	if err != nil {
		return err
	}
	defer c.Close()
	out, err := c.Exec("true")
	if err != nil {
		return fmt.Errorf("%w (output %q)", err, strings.TrimSpace(out))
	}
	return nil
}
