// Command ghbench runs the Gatehouse benchmark suite against a stock OpenSSH
// jump host and writes BENCHMARKS.md. `make bench` runs it through
// bench/run.sh; flags make a shorter or longer run.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/bench"
)

func main() {
	var o bench.Options
	var cases, sessions, revoke, pkgs string
	flag.StringVar(&o.Gatehouse, "gatehouse", "bin/gatehouse", "gatehouse binary under test")
	flag.StringVar(&o.Root, "root", ".", "module root (for the Go micro-benchmarks)")
	flag.StringVar(&o.Out, "out", "BENCHMARKS.md", "report to write")
	flag.StringVar(&o.Findings, "findings", "bench/FINDINGS.md", "hand-written findings appended to the report (\"\" for none)")
	flag.StringVar(&cases, "cases", strings.Join(bench.AllCases(), ","), "cases to run: "+strings.Join(bench.AllCases(), ",")+" (or hold: start the environment, print how to reach the node through each system, wait for Ctrl-C)")
	flag.IntVar(&o.SizeMiB, "size", 1024, "MiB per bulk transfer (1024, the issue's size, makes the bulk case take about 5 minutes; 64 for a quick look)")
	flag.IntVar(&o.Reps, "reps", 3, "runs per bulk transfer cell")
	flag.IntVar(&o.LatencyRuns, "latency-runs", 30, "connect latency runs per system")
	flag.StringVar(&sessions, "sessions", "100,1000", "concurrent session counts")
	flag.DurationVar(&o.Window, "window", 10*time.Second, "how long concurrent sessions type")
	flag.IntVar(&o.Parallel, "parallel", 16, "sessions opened at once")
	flag.IntVar(&o.RateWorkers, "rate-workers", 8, "concurrent clients in the connection-rate case")
	flag.DurationVar(&o.RateFor, "rate-duration", 20*time.Second, "connection-rate duration per system")
	flag.StringVar(&revoke, "revoke", "100,1000", "live session counts for the revocation case")
	flag.StringVar(&pkgs, "micro-pkgs", "./policy,./audit,./session", "packages whose Go benchmarks are collected")
	flag.StringVar(&o.Benchtime, "benchtime", "", "go test -benchtime for the micro-benchmarks (\"\": go's default)")
	flag.BoolVar(&o.Profile, "profile", true, "profile gatehouse with perf during extra runs")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (logs, recordings)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.Log = log
	o.Cases = splitList(cases)
	o.MicroPkgs = splitList(pkgs)
	var err error
	if o.Sessions, err = ints(sessions); err == nil {
		o.Revoke, err = ints(revoke)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ghbench:", err)
		os.Exit(2)
	}
	o.Command = strings.Join(os.Args, " ")
	if env := os.Getenv("GHBENCH_COMMAND"); env != "" {
		o.Command = env
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, o); err != nil {
		log.Error("benchmarks failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}
