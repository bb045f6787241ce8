package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a long-running daemon (sshd, gatehouse serve) with its output in
// a log file.
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProcess starts cmd in its own process group with stdout and stderr
// appended to logPath.
func startProcess(name, logPath string, cmd *exec.Cmd) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(cmd.Args, " "), err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop terminates the process and every descendant. sshd puts each
// connection in a session of its own, so the process group alone would miss
// them.
func (p *process) stop() {
	if p == nil || p.exited() {
		return
	}
	kids := descendants(p.pid())
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	for _, k := range descendants(p.pid()) {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
}

// waitListening waits until addr accepts TCP connections or p exits.
func waitListening(ctx context.Context, addr string, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s (%v); see %s", p.name, addr, p.err, p.log)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s on %s: %w", p.name, addr, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// descendants lists the living descendants of pid, found through /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func parentOf(pid int) (int, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces and parentheses: parse after the
	// last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 || f[0] == "Z" {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// memKiB reads one "Name:   123 kB" field from a /proc file
// (status: VmRSS; smaps_rollup: Pss).
func memKiB(path, field string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			break
		}
		return strconv.ParseInt(fs[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

// Memory is a process tree's resident memory.
type Memory struct {
	RSSKiB int64 // sum of VmRSS (counts shared pages once per process)
	PssKiB int64 // sum of Pss (shared pages split between sharers)
	Procs  int
}

// treeMemory sums the memory of pid and its descendants. Forking servers
// such as sshd share pages between processes, so Pss is the fair figure to
// compare with a single Go process.
func treeMemory(pid int) Memory {
	var m Memory
	for _, p := range append([]int{pid}, descendants(pid)...) {
		dir := filepath.Join("/proc", strconv.Itoa(p))
		rss, err := memKiB(filepath.Join(dir, "status"), "VmRSS")
		if err != nil {
			continue // gone meanwhile
		}
		pss, _ := memKiB(filepath.Join(dir, "smaps_rollup"), "Pss")
		m.RSSKiB += rss
		m.PssKiB += pss
		m.Procs++
	}
	return m
}

// run runs a short command and returns its stdout, or an error with stderr.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuTicks is the user+system CPU time pid has used, in clock ticks
// (USER_HZ, 100 on Linux).
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	// After ')': state(0) ppid(1) ... utime(11) stime(12).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return u + st, nil
}

const ticksPerSecond = 100

// quiesce waits until pid uses less than 5% of a core over half a second
// (at most limit), and returns how long that took and the CPU time pid
// used meanwhile. Gatehouse finishes work after a session ends (it
// compresses the recording), and the next measurement must not compete
// with it.
func quiesce(ctx context.Context, pid int, limit time.Duration) (wall, cpu time.Duration) {
	start := time.Now()
	first, err := cpuTicks(pid)
	if err != nil {
		return 0, 0
	}
	prev := first
	for time.Since(start) < limit && ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		cur, err := cpuTicks(pid)
		if err != nil {
			break
		}
		if cur-prev < ticksPerSecond/40 {
			return time.Since(start), time.Duration(cur-first) * time.Second / ticksPerSecond
		}
		prev = cur
	}
	last, _ := cpuTicks(pid)
	return time.Since(start), time.Duration(last-first) * time.Second / ticksPerSecond
}

// statTicks reads utime, stime, cutime and cstime of pid: its own CPU time
// and that of the children it has reaped.
func statTicks(pid int) (self, reaped int64, err error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	// After ')': state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	var v [4]int64
	for k := range v {
		if v[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
	}
	return v[0] + v[1], v[2] + v[3], nil
}

// treeTicks is the CPU time, in clock ticks, that pid and all its
// descendants have used: living processes count themselves, exited ones
// count in the parent that reaped them. sshd forks (and re-executes) per
// connection, so the difference of two readings is what a forking server
// used in between, including connections that came and went.
func treeTicks(pid int) int64 {
	self, reaped, err := statTicks(pid)
	if err != nil {
		return 0
	}
	total := self + reaped
	for _, k := range descendants(pid) {
		if s, r, err := statTicks(k); err == nil {
			total += s + r
		}
	}
	return total
}

// machineTicks reads the machine-wide busy and iowait time from /proc/stat,
// summed over all CPUs, in clock ticks.
func machineTicks() (busy, iowait int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var v [8]int64
	for k := range v {
		v[k], _ = strconv.ParseInt(f[1+k], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v[4]
}

// CPUShare is the CPU time, in cores (CPU seconds per second), that each
// party used over a measurement window.
type CPUShare struct {
	JumpHost, Node, Client float64 // JumpHost is 0 when there is none
	Machine, IOWait        float64 // every process on the machine
}

// Other is what the machine used beyond the parties measured: other
// engineers' work, perf, the kernel's own threads.
func (c CPUShare) Other() float64 { return max(0, c.Machine-c.JumpHost-c.Node-c.Client) }

type cpuReading struct {
	at                     time.Time
	jump, node, client     int64
	machine, machineIOWait int64
}

// readCPU samples the jump host's tree, the node sshd's tree (either pid 0
// for none), this process (the Go client) and the machine.
func readCPU(jumpPID, nodePID int) cpuReading {
	r := cpuReading{at: time.Now()}
	if nodePID != 0 {
		r.node = treeTicks(nodePID)
	}
	if jumpPID != 0 {
		r.jump = treeTicks(jumpPID)
	}
	r.client, _, _ = statTicks(os.Getpid())
	r.machine, r.machineIOWait = machineTicks()
	return r
}

// since is the CPU share used from r0 to r.
func (r cpuReading) since(r0 cpuReading) CPUShare {
	secs := r.at.Sub(r0.at).Seconds()
	if secs <= 0 {
		return CPUShare{}
	}
	cores := func(d int64) float64 { return float64(d) / ticksPerSecond / secs }
	return CPUShare{JumpHost: cores(r.jump - r0.jump), Node: cores(r.node - r0.node), Client: cores(r.client - r0.client),
		Machine: cores(r.machine - r0.machine), IOWait: cores(r.machineIOWait - r0.machineIOWait)}
}
