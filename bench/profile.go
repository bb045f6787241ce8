package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Profiler samples `gatehouse serve` with Linux perf while a case runs, so
// product code needs no profiling hooks. Go keeps frame pointers, so
// perf's default call-graph unwinding gives usable stacks.
type Profiler struct {
	PID int
	Dir string
	Log *slog.Logger

	mu   sync.Mutex
	runs []profileRun
}

type profileRun struct {
	label, file string
	err         error
}

// Available reports whether perf can be run.
func (p *Profiler) Available() bool {
	_, err := exec.LookPath("perf")
	return err == nil
}

// Start begins sampling and returns the function that stops it.
func (p *Profiler) Start(label string) func() {
	file := filepath.Join(p.Dir, "perf-"+label+".data")
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-p", fmt.Sprint(p.PID), "-o", file)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		p.add(profileRun{label: label, err: fmt.Errorf("start perf: %w", err)})
		return func() {}
	}
	// perf needs a moment to attach to every thread.
	time.Sleep(300 * time.Millisecond)
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		if err != nil && !strings.Contains(out.String(), "Captured and wrote") {
			err = fmt.Errorf("perf record: %w: %s", err, strings.TrimSpace(out.String()))
		} else {
			err = nil
		}
		p.add(profileRun{label: label, file: file, err: err})
	}
}

func (p *Profiler) add(r profileRun) {
	p.mu.Lock()
	p.runs = append(p.runs, r)
	p.mu.Unlock()
}

// Section reports the top self and inclusive costs of every profile taken.
func (p *Profiler) Section(ctx context.Context) Section {
	p.mu.Lock()
	runs := append([]profileRun(nil), p.runs...)
	p.mu.Unlock()
	var b strings.Builder
	b.WriteString("`perf record -F 499 -g -p $(pidof gatehouse)` during the run named, " +
		"then `perf report --no-children` (self time) and `--children` (time in the function and its callees). " +
		"Percentages are of the gatehouse process's samples.\n")
	if len(runs) == 0 {
		b.WriteString("\nNo profile was taken (perf missing, or -profile=false).\n")
	}
	for _, r := range runs {
		fmt.Fprintf(&b, "\n#### During %s\n\n", describeProfile(r.label))
		if r.err != nil {
			fmt.Fprintf(&b, "**FAILED:** `%v`\n", r.err)
			continue
		}
		self, err := perfTop(ctx, r.file, false, 18)
		if err != nil {
			fmt.Fprintf(&b, "**FAILED:** `%v`\n", err)
			continue
		}
		incl, err := perfTop(ctx, r.file, true, 30)
		if err != nil {
			fmt.Fprintf(&b, "**FAILED:** `%v`\n", err)
			continue
		}
		fmt.Fprintf(&b, "Self:\n\n```\n%s```\n\nInclusive (runtime scaffolding such as goexit and mstart left out):\n\n```\n%s```\n", self, incl)
	}
	return Section{Title: "Profile", Text: b.String()}
}

func describeProfile(label string) string {
	switch label {
	case "download":
		return "the last measured Gatehouse text download with the first cipher (recorded), through its recording's finalization"
	case "connect":
		return "the measured Gatehouse connection-rate churn"
	case "sessions":
		return "the typing window of the largest concurrent-sessions count (every session types a line a second)"
	}
	return label
}

// perfTop returns the top n lines of a perf report.
func perfTop(ctx context.Context, file string, children bool, n int) (string, error) {
	mode := "--no-children"
	if children {
		mode = "--children"
	}
	out, err := run(ctx, "perf", "report", "-i", file, "--stdio", mode, "--sort", "sym", "-g", "none", "--percent-limit", "0.5")
	if err != nil {
		return "", err
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") || !strings.Contains(t, "%") {
			continue
		}
		if children && (strings.Contains(t, "runtime.goexit") || strings.Contains(t, "runtime.mstart") ||
			strings.Contains(t, "runtime.systemstack") || strings.Contains(t, "runtime.mcall")) {
			continue
		}
		lines = append(lines, t)
		if len(lines) == n {
			break
		}
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// MicroBenchmarks runs the packages' Go benchmarks and returns their
// output lines.
func MicroBenchmarks(ctx context.Context, root string, pkgs []string, benchtime string) Section {
	args := []string{"test", "-run", "XXX", "-bench", ".", "-benchmem"}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	args = append(args, pkgs...)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "FAIL") ||
			strings.HasPrefix(l, "pkg:") || strings.HasPrefix(l, "cpu:") || strings.HasPrefix(l, "---") ||
			strings.HasPrefix(l, "panic") || strings.Contains(l, "_test.go:") {
			keep = append(keep, l)
		}
	}
	text := fmt.Sprintf("`go %s` (in-process, no baseline: these are the building blocks the end-to-end figures rest on; "+
		"some report CPU-time based metrics because wall time on a shared machine swings).\n\n```\n%s\n```\n",
		strings.Join(args, " "), strings.Join(keep, "\n"))
	if err != nil {
		text += fmt.Sprintf("\n**go test failed:** `%v`\n", err)
	}
	return Section{Title: "6. Go micro-benchmarks", Text: text}
}
