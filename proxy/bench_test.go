package proxy_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/session"
)

// recorderFactory records into dir with the real session recorder,
// encrypted to the recipients given.
func recorderFactory(dir string, to ...age.Recipient) proxy.RecorderFactory {
	return func(id string, h proxy.RecordingHeader, onErr func(error)) (proxy.Recorder, string, error) {
		r, err := session.NewRecorder(dir, id, session.Header{Width: h.Width, Height: h.Height, Timestamp: h.Start.Unix()},
			session.RecorderOptions{OnError: onErr, ONLCR: !h.PTY, Encrypt: to})
		if err != nil {
			return nil, "", err
		}
		return r, id, nil
	}
}

// BenchmarkRelayDownload measures bytes per second from a real sshd node
// through the in-process bastion to a Go client, with recording off, on,
// and on and encrypted to one age recipient, for log text (recorded into the cast) and for binary output (counted
// and hashed instead):
//
//	go test -run '^$' -bench RelayDownload -benchtime 3x ./proxy/
//	GATEHOUSE_RELAY_MIB=1024 go test -run '^$' -bench RelayDownload -benchtime 1x ./proxy/
//
// After each download the timer stops until the bastion has compressed the
// recording, so runs do not overlap; that work is reported on its own as
// finalize-cpu-ms/MiB.
func BenchmarkRelayDownload(b *testing.B) {
	size := int64(64 << 20)
	if v, err := strconv.Atoi(os.Getenv("GATEHOUSE_RELAY_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	contents := map[string]string{
		"text":   fmt.Sprintf("seq -f '%%g 2026-11-25T05:00:00Z INFO request served method=GET path=/api/v1/items status=200 bytes=5120' 1 100000000 | head -c %d", size),
		"binary": fmt.Sprintf("head -c %d /dev/urandom", size),
	}
	for _, recording := range []string{"off", "on", "encrypted"} {
		var rec proxy.RecorderFactory
		dir := b.TempDir()
		switch recording {
		case "on":
			rec = recorderFactory(dir)
		case "encrypted":
			ident, err := age.GenerateX25519Identity()
			if err != nil {
				b.Fatal(err)
			}
			rec = recorderFactory(dir, ident.Recipient())
		}
		mem := &memAudit{}
		bst := harness{az: allowUbuntu{}, rec: rec, aud: mem, mem: mem, realSSHD: true}.start(b)
		for _, kind := range []string{"text", "binary"} {
			b.Run(fmt.Sprintf("recording=%s/%s", recording, kind), func(b *testing.B) {
				b.SetBytes(size)
				var cpu, finCPU time.Duration
				for b.Loop() {
					cpu0 := processCPU(b)
					n, err := bst.download(b, contents[kind])
					if err != nil || n != size {
						b.Fatalf("download: %d bytes, %v", n, err)
					}
					cpu += processCPU(b) - cpu0
					b.StopTimer()
					cpu0 = processCPU(b)
					waitFinalized(b, dir)
					finCPU += processCPU(b) - cpu0
					b.StartTimer()
				}
				// Wall-clock MB/s moves with whatever else the shared
				// machine runs; the CPU this process (bastion and
				// client) spent per MiB moves much less. The node's
				// sshd is outside it and the same in every case.
				mib := float64(b.N) * float64(size>>20)
				b.ReportMetric(cpu.Seconds()*1e3/mib, "cpu-ms/MiB")
				b.ReportMetric(finCPU.Seconds()*1e3/mib, "finalize-cpu-ms/MiB")
			})
		}
	}
}

// waitFinalized waits until no recording under dir is still live in the
// form earlier versions compressed after the session (today's recordings
// are compressed as they are written: nothing to wait for).
func waitFinalized(b *testing.B, dir string) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		live, _ := filepath.Glob(filepath.Join(dir, "*", "*.cast"))
		tmp, _ := filepath.Glob(filepath.Join(dir, "*", "*.tmp"))
		if len(live)+len(tmp) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("recordings still live after 10 minutes: %v", live)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processCPU is this process's user+system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// download runs cmd on the node through the bastion and counts its output.
func (b *bastion) download(t testing.TB, cmd string) (int64, error) {
	inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
	if err != nil {
		return 0, err
	}
	defer closeAll()
	sess, err := inner.NewSession()
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := sess.Start(cmd); err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, out)
	if err != nil {
		return n, err
	}
	return n, sess.Wait()
}
