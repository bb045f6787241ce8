package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// sshRun runs the OpenSSH client with args, stdin from in (nil: empty) and
// stdout into out (nil: discarded), and returns how long it took.
func sshRun(ctx context.Context, args []string, in io.Reader, out io.Writer) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, "ssh", args...)
	if in == nil {
		in = strings.NewReader("")
	}
	if out == nil {
		out = io.Discard
	}
	var stderr strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("ssh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return d, nil
}

// ConnectLatency times `ssh -J jump node true` n times per system,
// alternating systems so that background load hits both alike.
func ConnectLatency(ctx context.Context, e *Env, n int) Section {
	args := map[System][]string{}
	for _, sys := range Systems() {
		a, err := e.SSHArgs(sys, BenchUser, "")
		if err != nil {
			return failed("Connect latency", err)
		}
		args[sys] = append(a, "true")
		// One warm-up each: page cache, sshd's first re-exec.
		if _, err := sshRun(ctx, args[sys], nil, nil); err != nil {
			return failed("Connect latency", err)
		}
	}
	times := map[System][]time.Duration{}
	errs := map[System]int{}
	var lastErr error
	for i := 0; i < n; i++ {
		for _, sys := range Systems() {
			d, err := sshRun(ctx, args[sys], nil, nil)
			if err != nil {
				errs[sys]++
				lastErr = err
				continue
			}
			times[sys] = append(times[sys], d)
		}
	}
	t := Table{Header: []string{"", "Gatehouse", "OpenSSH jump", "ratio GH/OpenSSH"}}
	g, b := ms(times[Gatehouse]), ms(times[Baseline])
	t.Add("median (ms)", f1(Median(g)), f1(Median(b)), ratio(Median(g), Median(b)))
	t.Add("p90 (ms)", f1(Percentile(g, 90)), f1(Percentile(b, 90)), ratio(Percentile(g, 90), Percentile(b, 90)))
	t.Add("runs ok / errors", fmt.Sprintf("%d / %d", len(g), errs[Gatehouse]), fmt.Sprintf("%d / %d", len(b), errs[Baseline]), "")
	text := fmt.Sprintf("`ssh -J JUMP ubuntu@node true` with the OpenSSH client, certificate already issued, no multiplexing, "+
		"OpenSSH's default cipher; %d runs per system after one warm-up, systems alternated run by run. "+
		"Wall time of the whole client process (two handshakes for the client; Gatehouse also terminates the inner "+
		"connection and dials the node with a freshly signed certificate, writes the session index, the audit events and "+
		"opens the recording).\n\n%s", n, t.Markdown())
	if lastErr != nil {
		text += fmt.Sprintf("\nLast error: `%v`\n", lastErr)
	}
	return Section{Title: "1. Connect latency", Text: text}
}

// BulkOptions configure the transfer case.
type BulkOptions struct {
	Size    int64
	Reps    int
	Ciphers []string
	// Profile, if set, is called around the last Gatehouse download with
	// the first cipher; it returns a stop function.
	Profile func(label string) func()
}

// Bulk pushes Size bytes of random data up (`cat >/dev/null`) and down
// (`cat FILE`), and Size bytes of log text down, through each system with
// each cipher, Reps times, and reports median throughput. The two
// downloads differ for Gatehouse: text goes into the recording, binary
// output (it has NUL bytes) is counted and hashed instead.
func Bulk(ctx context.Context, e *Env, o BulkOptions) Section {
	const title = "2. Bulk throughput"
	payload := map[string]string{"binary": filepath.Join(e.Dir, "payload.bin"), "text": filepath.Join(e.Dir, "payload.log")}
	if err := writeRandom(payload["binary"], o.Size); err != nil {
		return failed(title, err)
	}
	if err := writeLogText(payload["text"], o.Size); err != nil {
		return failed(title, err)
	}
	defer os.Remove(payload["binary"])
	defer os.Remove(payload["text"])
	t := Table{Header: []string{"cipher", "direction", "payload", "Gatehouse MiB/s", "OpenSSH jump MiB/s", "ratio GH/OpenSSH",
		"jump host CPU-s per GiB, GH / OpenSSH", "machine busy (cores), GH / OpenSSH"}}
	jumpPID := map[System]int{Gatehouse: e.GHPid(), Baseline: e.JumpPid()}
	var notes []string
	fin := map[string][]float64{} // payload -> finalization CPU-s
	finWall := map[string][]float64{}
	for _, cipher := range o.Ciphers {
		args := map[System][]string{}
		for _, sys := range Systems() {
			a, err := e.SSHArgs(sys, BenchUser, cipher)
			if err != nil {
				return failed(title, err)
			}
			args[sys] = a
		}
		for _, cell := range []struct{ dir, kind string }{{"upload", "binary"}, {"download", "binary"}, {"download", "text"}} {
			rates := map[System][]float64{}
			cpuGiB := map[System][]float64{} // the jump host's CPU seconds per GiB moved
			busy := map[System][]float64{}   // the machine's busy cores over the transfer
			for r := 0; r < o.Reps; r++ {
				for _, sys := range Systems() {
					quiesce(ctx, e.GHPid(), 10*time.Minute)
					// Profile the last Gatehouse text download with the
					// first cipher (the one that fills the recording),
					// through its recording's finalization. perf at 499 Hz
					// costs the run a percent or two.
					var stop func()
					if o.Profile != nil && sys == Gatehouse && cell.dir == "download" && cell.kind == "text" && cipher == o.Ciphers[0] && r == o.Reps-1 {
						stop = o.Profile("download")
					}
					kids := len(descendants(jumpPID[sys]))
					c0 := readCPU(jumpPID[sys], 0)
					d, err := transfer(ctx, args[sys], cell.dir, payload[cell.kind], o.Size)
					// The jump sshd's per-connection processes count once
					// they have exited and been reaped.
					for deadline := time.Now().Add(2 * time.Second); len(descendants(jumpPID[sys])) > kids && time.Now().Before(deadline); {
						time.Sleep(5 * time.Millisecond)
					}
					c1 := readCPU(jumpPID[sys], 0)
					if err != nil {
						notes = append(notes, fmt.Sprintf("%s %s %s %s: `%v`", sys, cipher, cell.dir, cell.kind, err))
						continue
					}
					rates[sys] = append(rates[sys], float64(o.Size)/(1<<20)/d.Seconds())
					share := c1.since(c0)
					secs := c1.at.Sub(c0.at).Seconds()
					cpuGiB[sys] = append(cpuGiB[sys], share.JumpHost*secs/(float64(o.Size)/(1<<30)))
					busy[sys] = append(busy[sys], share.Machine)
					if sys == Gatehouse && cell.dir == "download" {
						wall, cpu := quiesce(ctx, e.GHPid(), 10*time.Minute)
						finWall[cell.kind] = append(finWall[cell.kind], wall.Seconds())
						fin[cell.kind] = append(fin[cell.kind], cpu.Seconds())
					}
					if stop != nil {
						stop()
					}
				}
			}
			g, b := Median(rates[Gatehouse]), Median(rates[Baseline])
			t.Add("`"+cipher+"`", cell.dir, cell.kind, fmt.Sprintf("%s (%d runs)", f1(g), len(rates[Gatehouse])),
				fmt.Sprintf("%s (%d runs)", f1(b), len(rates[Baseline])), ratio(g, b),
				f2(Median(cpuGiB[Gatehouse]))+" / "+f2(Median(cpuGiB[Baseline])),
				f2(Median(busy[Gatehouse]))+" / "+f2(Median(busy[Baseline])))
		}
	}
	recs, _ := dirSize(filepath.Join(e.Dir, "data", "recordings"))
	text := fmt.Sprintf("%d MiB per transfer (`-size`), %d runs per cell, systems alternated; "+
		"upload is `ssh -c CIPHER -J JUMP node 'cat >/dev/null' < file` with random bytes, download is "+
		"`ssh -c CIPHER -J JUMP node 'cat file' > /dev/null` of the random file (*binary*) or of a log file (*text*: "+
		"timestamped request lines, as a `journalctl` or `kubectl logs` would print) "+
		"(Ciphers set in the client config, so the jump hop uses the same cipher). "+
		"Gatehouse records every session (recording ON: there is no off switch in the product, recording.mode is strict here): "+
		"a text download's bytes all go into the asciicast recording; binary stdout (it contains NUL bytes) is counted and "+
		"SHA-256-hashed into the audit log instead of the cast, like any file transfer; an upload's bytes are not recorded "+
		"(record_input is false). "+
		"Gatehouse's own leg to the node uses x/crypto's first choice, aes128-gcm, whatever the client picked. "+
		"The CPU columns are medians read from /proc around each transfer: the jump host's CPU seconds per GiB moved "+
		"(Gatehouse's process; the jump sshd with its per-connection children) and the machine's busy cores (of %d; the "+
		"client, the node sshd and the jump host share them). Gatehouse terminates the inner connection, so it runs a cipher "+
		"three times per byte (the node leg, the inner connection, the outer one) where the OpenSSH jump host, relaying the "+
		"inner connection's ciphertext, runs it once. "+
		"Before every transfer the bench waits until gatehouse is idle (see below), so no run competes with the previous one's "+
		"recording work. Recordings on disk after this case: %d MiB.\n\n%s\n"+
		"After each Gatehouse download the client has exited but Gatehouse may still be finishing the recording (it is "+
		"compressed with zstd as it is written, so only the tail of the queue and the file's close are left) until it is idle again: text downloads median %s s wall and %s CPU-seconds, binary downloads %s s and %s CPU-s, "+
		"per %d MiB download. This work is not in the MiB/s above, but it competes with every other session on the bastion.\n",
		o.Size>>20, o.Reps, runtime.NumCPU(), recs>>20, t.Markdown(), f1(Median(finWall["text"])), f1(Median(fin["text"])),
		f1(Median(finWall["binary"])), f1(Median(fin["binary"])), o.Size>>20)
	if o.Size < 1<<30 {
		text += fmt.Sprintf("\n**Size:** %d MiB per transfer, not the 1 GiB aimed for (`make bench` runs 1 GiB; this run was given `-size`). "+
			"Small transfers on a busy machine flatter the slower system: load slows both alike and hides the CPU gap.\n", o.Size>>20)
	}
	for _, n := range notes {
		text += "\n- " + n
	}
	return Section{Title: title, Text: text}
}

func transfer(ctx context.Context, args []string, dir, path string, size int64) (time.Duration, error) {
	if dir == "upload" {
		f, err := os.Open(path)
		if err != nil {
			return 0, fmt.Errorf("open payload: %w", err)
		}
		defer f.Close()
		return sshRun(ctx, append(args, "cat >/dev/null"), f, nil)
	}
	var c countWriter
	d, err := sshRun(ctx, append(args, "cat "+path), nil, &c)
	if err == nil && int64(c) != size {
		err = fmt.Errorf("download delivered %d bytes, want %d", int64(c), size)
	}
	return d, err
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// writeRandom writes n random bytes: incompressible, and the worst case for
// the recorder's JSON escaping, the same for both systems.
func writeRandom(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create payload: %w", err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		f.Close()
		return fmt.Errorf("write payload: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	return nil
}

// writeLogText writes n bytes of log lines whose numbers change line by
// line: text a terminal shows, compressible as real logs are, the same for
// both systems.
func writeLogText(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create payload: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Date(2026, 11, 25, 5, 0, 0, 0, time.UTC)
	var line []byte
	for i, written := int64(0), int64(0); written < n; i++ {
		line = fmt.Appendf(line[:0], "%s INFO request served method=GET path=/api/v1/items/%d status=%d bytes=%d dur=%.1fms user=u%04d\n",
			start.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000Z"), i*7919%100000, 200+(i%17)/16*104,
			512+i*31%8192, float64(i*13%900)/10, i%1000)
		if rest := n - written; int64(len(line)) > rest {
			line = line[:rest]
		}
		if _, err := w.Write(line); err != nil {
			f.Close()
			return fmt.Errorf("write payload: %w", err)
		}
		written += int64(len(line))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write payload: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	return nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

func failed(title string, err error) Section {
	return Section{Title: title, Text: fmt.Sprintf("**FAILED:** `%v`\n", err)}
}
