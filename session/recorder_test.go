package session

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"filippo.io/age"
)

const testID = "0123456789abcdef01234567"

// stepClock is a fake wall clock that moves forward by step on every call,
// so event times are exact and predictable.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

func newTestRecorder(t *testing.T, dir string, opts RecorderOptions) *Recorder {
	t.Helper()
	if opts.Now == nil {
		opts.Now = (&stepClock{now: time.Unix(1700000000, 0), step: 250 * time.Millisecond}).Now
	}
	r, err := NewRecorder(dir, testID, Header{Width: 100, Height: 30, Title: "db-1", Env: map[string]string{"TERM": "xterm-256color"}}, opts)
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	return r
}

// readAll parses a stored recording completely.
func readAll(t *testing.T, dir, id string) (Header, []Event) {
	t.Helper()
	rc, err := Open(dir, id)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	h, events, err := Parse(rc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var evs []Event
	for ev, err := range events {
		if err != nil {
			t.Fatalf("event %d: %v", len(evs), err)
		}
		evs = append(evs, ev)
	}
	return h, evs
}

func TestRecorderRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{RecordInput: true})
	r.Output([]byte("$ "))
	r.Input([]byte("ls\r"))
	r.Output([]byte("ls\r\n\x1b[1;34mdir\x1b[0m  \"quoted\" back\\slash\ttab\x00nul\r\n"))
	r.Resize(120, 40)
	r.Output([]byte("héllo ✓ 𝄞\r\n"))
	r.Output(nil) // no event for an empty write
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	h, evs := readAll(t, dir, testID)
	if h.Version != 2 || h.Width != 100 || h.Height != 30 || h.Timestamp != 1700000000 || h.Title != "db-1" || h.Env["TERM"] != "xterm-256color" {
		t.Errorf("header = %+v", h)
	}
	// The first clock reading is the start; each event reads it once more.
	want := []Event{
		{Time: 250 * time.Millisecond, Type: "o", Data: "$ "},
		{Time: 500 * time.Millisecond, Type: "i", Data: "ls\r"},
		{Time: 750 * time.Millisecond, Type: "o", Data: "ls\r\n\x1b[1;34mdir\x1b[0m  \"quoted\" back\\slash\ttab\x00nul\r\n"},
		{Time: 1000 * time.Millisecond, Type: "r", Data: "120x40"},
		{Time: 1250 * time.Millisecond, Type: "o", Data: "héllo ✓ 𝄞\r\n"},
	}
	if !equalEvents(evs, want) {
		t.Fatalf("events:\n got %q\nwant %q", evs, want)
	}
	if cols, rows, ok := evs[3].Size(); !ok || cols != 120 || rows != 40 {
		t.Errorf("Size() = %d, %d, %v", cols, rows, ok)
	}
}

func equalEvents(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRecorderInputOnlyWhenEnabled(t *testing.T) {
	for _, tc := range []struct {
		name        string
		recordInput bool
		wantTypes   string
	}{
		{"disabled", false, "oo"},
		{"enabled", true, "oio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newTestRecorder(t, dir, RecorderOptions{RecordInput: tc.recordInput})
			r.Output([]byte("Password: "))
			r.Input([]byte("hunter2\r"))
			r.Output([]byte("\r\nwelcome\r\n"))
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			_, evs := readAll(t, dir, testID)
			var types string
			for _, ev := range evs {
				types += ev.Type
				if !tc.recordInput && strings.Contains(ev.Data, "hunter2") {
					t.Errorf("input recorded while disabled: %q", ev.Data)
				}
			}
			if types != tc.wantTypes {
				t.Errorf("event types = %q, want %q", types, tc.wantTypes)
			}
		})
	}
}

func TestRecorderUTF8Split(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string // concatenated data of all output events
	}{
		{"two-byte rune split", []string{"caf\xc3", "\xa9!"}, "café!"},
		{"three-byte rune split in three", []string{"\xe2", "\x82", "\xac"}, "€"},
		{"four-byte rune split 1+3", []string{"a\xf0", "\x9d\x84\x9e"}, "a𝄞"},
		{"four-byte rune split 3+1", []string{"\xf0\x9d\x84", "\x9ez"}, "𝄞z"},
		{"invalid byte", []string{"a\xffb"}, "a\uFFFDb"},
		{"lone continuation", []string{"\x80x"}, "\uFFFDx"},
		{"prefix not continued", []string{"x\xe2\x82", "y"}, "x\uFFFD\uFFFDy"}, // as if unsplit
		{"prefix cut at close", []string{"end\xe2\x82"}, "end\uFFFD\uFFFD"},
		{"overlong encoding", []string{"\xc0\xaf"}, "\uFFFD\uFFFD"},
		{"surrogate", []string{"\xed\xa0\x80"}, "\uFFFD\uFFFD\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newTestRecorder(t, dir, RecorderOptions{})
			for _, w := range tc.writes {
				r.Output([]byte(w))
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			_, evs := readAll(t, dir, testID)
			var got string
			for _, ev := range evs {
				if !utf8.ValidString(ev.Data) || ev.Data == "" {
					t.Errorf("event data %q is empty or not valid UTF-8", ev.Data)
				}
				got += ev.Data
			}
			if got != tc.want {
				t.Errorf("output = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRecorderSplitsLargeWrites(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{})
	// A multibyte rune straddles the event-size boundary.
	big := strings.Repeat("x", maxEventData-1) + "€" + strings.Repeat("\x1b", maxEventData)
	r.Output([]byte(big))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, evs := readAll(t, dir, testID)
	var got strings.Builder
	for _, ev := range evs {
		if len(ev.Data) > maxEventData+utf8.UTFMax {
			t.Errorf("event of %d bytes, want at most about %d", len(ev.Data), maxEventData)
		}
		got.WriteString(ev.Data)
	}
	if got.String() != big || len(evs) < 3 {
		t.Errorf("got %d events, data intact: %v", len(evs), got.String() == big)
	}
}

func TestRecorderResizeIgnoresNonsense(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{})
	r.Resize(0, 24)
	r.Resize(80, -1)
	r.Resize(99999, 99999) // clamped so the file stays valid
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, evs := readAll(t, dir, testID)
	if len(evs) != 1 || evs[0].Data != "10000x10000" {
		t.Errorf("events = %q", evs)
	}
}

func TestRecorderWritesZstd(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{})
	path, _ := CastPath(dir, testID, nil)
	if r.Path() != path || !strings.HasSuffix(path, ".cast.zst") {
		t.Errorf("Path() = %s, want %s ending .cast.zst", r.Path(), path)
	}
	if !strings.HasPrefix(path, dir+string(filepath.Separator)) || filepath.Dir(filepath.Dir(path)) != dir {
		t.Errorf("path %s is not in a shard directly under %s", path, dir)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("file missing while recording: %v", err)
	}
	r.Output([]byte("hello\r\n"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The reference decompressor reads the file as one stream.
	plain, err := exec.Command("zstd", "-dc", path).Output()
	if err != nil {
		t.Fatalf("zstd -dc %s: %v", path, err)
	}
	if !bytes.HasPrefix(plain, []byte(`{"version":2,"width":100,"height":30,`)) || !bytes.HasSuffix(plain, []byte(`, "o", "hello\r\n"]`+"\n")) {
		t.Errorf("decompressed recording:\n%s", plain)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v %v", fi.Mode(), err)
	}
	if all, _ := filepath.Glob(filepath.Join(dir, "*", "*")); len(all) != 1 {
		t.Errorf("files after Close: %v, want only %s", all, path)
	}
	// Output after Close is ignored, not a panic.
	r.Output([]byte("late"))
}

func TestOpenFindsLiveAndFinal(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, testID); !errors.Is(err, ErrNoRecording) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of missing recording: %v", err)
	}
	r := newTestRecorder(t, dir, RecorderOptions{FlushInterval: time.Millisecond})
	r.Output([]byte("live data\r\n"))

	// While live, Open reads the plain file as far as the timer flushed it.
	var evs []Event
	for deadline := time.Now().Add(10 * time.Second); len(evs) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("flush timer never wrote the event")
		}
		time.Sleep(time.Millisecond)
		_, evs = readAll(t, dir, testID)
	}
	if evs[0].Data != "live data\r\n" {
		t.Errorf("live events = %q", evs)
	}
	if _, err := NewRecorder(dir, testID, Header{}, RecorderOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second recorder for a live id: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, evs = readAll(t, dir, testID)
	if len(evs) != 1 || evs[0].Data != "live data\r\n" {
		t.Errorf("final events = %q", evs)
	}
	if _, err := NewRecorder(dir, testID, Header{}, RecorderOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second recorder for a closed id: %v", err)
	}
}

func TestInvalidIDsRefused(t *testing.T) {
	for _, id := range []string{
		"", "../x", "a/b", "../../../../etc/passwd", "abcdefgh/..", "abcdefg/h",
		"short", "-abcdefgh", "ABCDEF0123", "abcdefgh.cast", "abc defgh", "abcdefgh\x00",
		"abcdefgh\n", strings.Repeat("a", 65), `abcd\efgh`, "ábcdefgh",
	} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			dir := t.TempDir()
			if _, err := NewRecorder(dir, id, Header{}, RecorderOptions{}); !errors.Is(err, ErrInvalidID) {
				t.Errorf("NewRecorder: %v", err)
			}
			if _, err := Open(dir, id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("Open: %v", err)
			}
			if _, err := CastPath(dir, id, nil); !errors.Is(err, ErrInvalidID) {
				t.Errorf("CastPath: %v", err)
			}
			if _, err := Files(id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("Files: %v", err)
			}
			if err := Finalize(dir, id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("Finalize: %v", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files created for invalid id: %v", entries)
			}
		})
	}
	for _, id := range []string{"0123456789abcdef01234567", "3f2b8c1e-7a4d-4e9b-9c1f-2d6e8a0b4c7d", "abcdefgh", strings.Repeat("z", 64)} {
		if err := ValidID(id); err != nil {
			t.Errorf("ValidID(%q) = %v", id, err)
		}
	}
}

func TestRecorderWriteErrorReportedOnce(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var calls []error
	r := newTestRecorder(t, dir, RecorderOptions{Logger: slog.New(slog.DiscardHandler), OnError: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, err)
	}})
	// A real full disk: every write to /dev/full fails with ENOSPC.
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full on this system: %v", err)
	}
	r.mu.Lock()
	r.f.Close()
	r.f, r.sw.w = full, full
	r.mu.Unlock()
	if r.Err() != nil {
		t.Fatalf("Err before any failure: %v", r.Err())
	}
	big := bytes.Repeat([]byte("y"), flushThreshold)
	r.Output(big)
	r.Output(big) // forces a write of the first
	r.Output(big)
	if err := r.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush() = %v, want ENOSPC", err)
	}
	if err := r.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Err() = %v, want ENOSPC", err)
	}
	if err := r.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close() = %v, want the write error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || !errors.Is(calls[0], syscall.ENOSPC) {
		t.Errorf("OnError calls = %v, want exactly one ENOSPC", calls)
	}
}

func TestFinalizeAfterCrash(t *testing.T) {
	dir := t.TempDir()
	live := legacyPath(t, dir, testID)
	if err := os.MkdirAll(filepath.Dir(live), 0o700); err != nil {
		t.Fatal(err)
	}
	data := "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"left behind\"]\n"
	if err := os.WriteFile(live, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Finalize(dir, testID); err != nil {
		t.Fatalf("Finalize: %v", err)
	}
	if _, err := os.Stat(live); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("live file remains")
	}
	_, evs := readAll(t, dir, testID)
	if len(evs) != 1 || evs[0].Data != "left behind" {
		t.Errorf("events = %q", evs)
	}
	if err := Finalize(dir, testID); err != nil {
		t.Errorf("Finalize of a final recording: %v", err)
	}
	if err := Finalize(dir, "ffffffffffffffff"); err != nil {
		t.Errorf("Finalize of a missing recording: %v", err)
	}
}

// The helper process records numbered lines until killed. It is this test
// binary run again with killHelperEnv set.
const killHelperEnv = "GATEHOUSE_SESSION_KILL_HELPER_DIR"

func TestKilledWriterHelper(t *testing.T) {
	dir := os.Getenv(killHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestKilledWriterLeavesPlayableFile")
	}
	r, err := NewRecorder(dir, testID, Header{Width: 80, Height: 24}, RecorderOptions{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	const ready = 200
	for i := 0; ; i++ {
		r.Output([]byte(killHelperLine(i)))
		if i == ready-1 {
			// Wait for the flush timer (not Close) to put the lines on disk.
			want := fmt.Sprintf("line %06d", i)
			for {
				if b := readPartial(dir, testID); strings.Contains(b, want) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			fmt.Println("ready")
		}
	}
}

// killHelperLine is the i-th write of the helper. After the first 200,
// writes are large so the buffer is written out every few events and the
// kill is likely to land while a write is in progress.
func killHelperLine(i int) string {
	if i < 200 {
		return fmt.Sprintf("line %06d\r\n", i)
	}
	return fmt.Sprintf("line %06d %s\r\n", i, strings.Repeat("x", 20000))
}

func TestKilledWriterLeavesPlayableFile(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterHelper$", "-test.v=false")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v", line, err)
	}
	// Kill once the large writes have started reaching the file.
	live, _ := CastPath(dir, testID, nil)
	start, err := os.Stat(live)
	if err != nil {
		t.Fatal(err)
	}
	for {
		fi, err := os.Stat(live)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > start.Size() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	check := func(what string) int {
		rc, err := Open(dir, testID)
		if err != nil {
			t.Fatalf("%s: Open: %v", what, err)
		}
		defer rc.Close()
		_, events, err := Parse(rc)
		if err != nil {
			t.Fatalf("%s: Parse: %v", what, err)
		}
		n := 0
		for ev, err := range events {
			if err != nil {
				// Only the kernel cutting the last write short may leave a
				// partial line; anything else is corruption.
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("%s: after %d events: %v", what, n, err)
				}
				break
			}
			if want := killHelperLine(n); ev.Data != want {
				t.Fatalf("%s: event %d = %.40q..., want %.40q...", what, n, ev.Data, want)
			}
			n++
		}
		if n < 200 {
			t.Fatalf("%s: only %d events survived, want at least the 200 flushed before the kill", what, n)
		}
		return n
	}
	n := check("file left by the kill")
	t.Logf("%d events survived SIGKILL", n)
}

// terminalOutput looks like a colourful ls/build log: mostly ASCII, some
// escapes and CRLFs, a little UTF-8.
func terminalOutput(n int) []byte {
	line := "\x1b[01;34mdrwxr-xr-x\x1b[0m  2 bob  staff  4096 Nov 25 04:29 \x1b[01;32mgatehouse\x1b[0m – ✓ build ok (go test -race ./session/...)\r\n"
	b := bytes.Repeat([]byte(line), n/len(line)+1)
	return b[:n]
}

// plainText looks like `cat` of a log file: ASCII with LF line ends.
func plainText(n int) []byte {
	line := "2026-11-25T04:29:00Z INFO request served method=GET path=/api/v1/sessions status=200 dur=1.2ms\n"
	b := bytes.Repeat([]byte(line), n/len(line)+1)
	return b[:n]
}

// binaryData is the worst case, `cat` of a binary: many escapes and
// invalid UTF-8.
func binaryData(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func BenchmarkRecorderOutput(b *testing.B) {
	for _, content := range []struct {
		name string
		gen  func(int) []byte
	}{{"terminal", terminalOutput}, {"text", plainText}, {"binary", binaryData}} {
		for _, size := range []int{1 << 10, 32 << 10} {
			b.Run(fmt.Sprintf("%s/chunk=%dKiB", content.name, size>>10), func(b *testing.B) {
				benchmarkRecorderOutput(b, content.gen(size))
			})
		}
	}
}

func benchmarkRecorderOutput(b *testing.B, chunk []byte) {
	r, err := NewRecorder(b.TempDir(), testID, Header{Width: 80, Height: 24}, RecorderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		r.Output(chunk)
	}
	// The encoding runs on the writer goroutine: wait for it, so the
	// figures include all of the recording's work.
	if err := r.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// The machine is shared, so wall-clock MB/s swings with other load;
	// MB per second of CPU this process burned swings much less.
	if cpu := cpuTime(b) - cpu0; cpu > 0 {
		b.ReportMetric(float64(len(chunk))*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
	if err := r.Err(); err != nil {
		b.Fatal(err)
	}
	// Skip Close: what is measured is the steady state.
	r.closeOnce.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		r.f.Close()
	})
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendJSONText is the encoding alone, without the file.
func BenchmarkAppendJSONText(b *testing.B) {
	for _, content := range []struct {
		name string
		gen  func(int) []byte
	}{{"terminal", terminalOutput}, {"text", plainText}, {"binary", binaryData}} {
		b.Run(content.name, func(b *testing.B) {
			chunk := content.gen(32 << 10)
			dst := make([]byte, 0, 6*len(chunk))
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				dst = appendJSONTextCRLF(dst[:0], chunk, true, false)
			}
			if cpu := cpuTime(b) - cpu0; cpu > 0 {
				b.ReportMetric(float64(len(chunk))*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
			}
		})
	}
}

// TestRecorderConcurrent writes from the goroutines a proxy would use, with
// a short flush interval so the timer races the writers.
func TestRecorderConcurrent(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir, testID, Header{}, RecorderOptions{RecordInput: true, FlushInterval: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			r.Output([]byte(fmt.Sprintf("out %d ✓\r\n", i)))
		}
	})
	wg.Go(func() {
		for i := range n {
			r.Input([]byte(fmt.Sprintf("in %d\r", i)))
		}
	})
	wg.Go(func() {
		for i := range n {
			r.Resize(80+i%50, 24)
		}
	})
	wg.Go(func() {
		for range n {
			_ = r.Err()
		}
	})
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, evs := readAll(t, dir, testID)
	next := map[string]int{}
	for _, ev := range evs {
		var want string
		switch ev.Type {
		case "o":
			want = fmt.Sprintf("out %d ✓\r\n", next["o"])
		case "i":
			want = fmt.Sprintf("in %d\r", next["i"])
		case "r":
			want = fmt.Sprintf("%dx24", 80+next["r"]%50)
		}
		if ev.Data != want {
			t.Fatalf("%s event %d = %q, want %q", ev.Type, next[ev.Type], ev.Data, want)
		}
		next[ev.Type]++
	}
	if next["o"] != n || next["i"] != n || next["r"] != n {
		t.Errorf("event counts %v, want %d each", next, n)
	}
}

// TestRecorderONLCR: output of a session without a pty is recorded as the
// user's terminal showed it, every lone \n as \r\n, across chunk and rune
// boundaries; with a pty (ONLCR off) bytes stay as they are.
func TestRecorderONLCR(t *testing.T) {
	for _, tc := range []struct {
		name   string
		onlcr  bool
		chunks []string
		want   string
	}{
		{"lone newlines", true, []string{"a\nb\n\n"}, "a\r\nb\r\n\r\n"},
		{"already crlf", true, []string{"a\r\nb\r\n"}, "a\r\nb\r\n"},
		{"cr ends a chunk", true, []string{"a\r", "\nb"}, "a\r\nb"},
		{"newline starts a chunk", true, []string{"a", "\nb"}, "a\r\nb"},
		{"rune split before newline", true, []string{"caf\xc3", "\xa9\n"}, "café\r\n"},
		{"escape-worthy bytes around", true, []string{"\"q\"\t\\\n\x1b[0m\n"}, "\"q\"\t\\\r\n\x1b[0m\r\n"},
		{"pty output unchanged", false, []string{"a\nb\r\n"}, "a\nb\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newTestRecorder(t, dir, RecorderOptions{ONLCR: tc.onlcr})
			for _, c := range tc.chunks {
				r.Output([]byte(c))
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			_, evs := readAll(t, dir, testID)
			var got strings.Builder
			for _, ev := range evs {
				got.WriteString(ev.Data)
			}
			if got.String() != tc.want {
				t.Errorf("recorded %q, want %q", got.String(), tc.want)
			}
		})
	}
}

// TestRecorderMarker: a marker lands between the output around it, as an
// "m" event, and does not disturb a rune split across it.
func TestRecorderMarker(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{})
	r.Output([]byte("before "))
	r.Marker("binary starts here")
	r.Marker("") // ignored
	r.Output([]byte("after"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, evs := readAll(t, dir, testID)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Type+":"+ev.Data)
	}
	want := []string{"o:before ", "m:binary starts here", "o:after"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// TestRecorderBackpressure: when the file takes no more (a stalled disk,
// here a pipe nobody reads), Output blocks once the queue is full instead
// of growing memory or dropping events; when the file drains, every byte
// arrives in order.
func TestRecorderBackpressure(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.f.Close()
	r.f, r.sw.w = pw, pw
	r.mu.Unlock()

	const chunks = 64 // 2 MiB: far more than the pipe and the queue hold
	// Random letters, so that compression cannot make them fit the pipe.
	chunk := func(i int) []byte {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		b := make([]byte, 32<<10)
		for j := range b {
			b[j] = 'a' + byte(rng.IntN(26))
		}
		return b
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := range chunks {
			r.Output(chunk(i))
		}
	}()
	select {
	case <-wrote:
		t.Fatalf("all %d KiB were accepted while the file took nothing: the queue is unbounded", chunks*32)
	case <-time.After(300 * time.Millisecond):
	}
	r.mu.Lock()
	queued := len(r.data)
	r.mu.Unlock()
	if queued > maxQueued+32<<10 {
		t.Errorf("%d bytes queued, want at most about %d", queued, maxQueued)
	}

	var read bytes.Buffer
	copied := make(chan error, 1)
	go func() { _, err := io.Copy(&read, pr); copied <- err }()
	<-wrote
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	pw.Close() // Close below then fails to sync the pipe; that is fine here
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	d, err := Decode(&read)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(string(plain), "\n"), "\n") {
		ev, err := parseEvent([]byte(line))
		if err != nil {
			t.Fatalf("line %.40q: %v", line, err)
		}
		got.WriteString(ev.Data)
	}
	var want strings.Builder
	for i := range chunks {
		want.Write(chunk(i))
	}
	if got.String() != want.String() {
		t.Errorf("recorded %d bytes, want the %d written, in order", got.Len(), want.Len())
	}
}

// TestRecorderWriterExitsWhenIdle: the writer goroutine exists only while
// there is output to write, so idle sessions cost no goroutine.
func TestRecorderWriterExitsWhenIdle(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir, testID, Header{}, RecorderOptions{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	running := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.running
	}
	for round := range 3 {
		r.Output([]byte(fmt.Sprintf("line %d\r\n", round)))
		if !running() {
			t.Fatalf("round %d: no writer after output", round)
		}
		deadline := time.Now().Add(5 * time.Second)
		for running() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if running() {
			t.Fatalf("round %d: the writer still runs long after the output was written", round)
		}
		b, err := os.ReadFile(r.Path())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(fmt.Sprintf("line %d", round))) {
			t.Fatalf("round %d: the writer exited before writing the output", round)
		}
	}
}

// FuzzRecorderONLCR: whatever bytes a session without a pty writes, split
// anywhere, the recording holds them as a terminal with ONLCR showed them:
// each invalid byte as U+FFFD (as ranging over a Go string does) and each
// \n not after \r as \r\n.
func FuzzRecorderONLCR(f *testing.F) {
	f.Add([]byte("a\r\nb\nc\xc3\xa9\n"), 3)
	f.Add([]byte("\r\n\n\xe2\x9c"), 1)
	f.Add([]byte("\xf0\x9f\x98\x80\n\x00\"\\"), 2)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if len(data) > 1<<16 {
			return
		}
		k := 0
		if len(data) > 0 {
			k = (split%len(data) + len(data)) % len(data)
		}
		dir := t.TempDir()
		r, err := NewRecorder(dir, testID, Header{}, RecorderOptions{ONLCR: true})
		if err != nil {
			t.Fatal(err)
		}
		r.Output(data[:k])
		r.Output(data[k:])
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		prev := byte(0)
		for _, c := range data {
			if c == '\n' && prev != '\r' {
				want.WriteByte('\r')
			}
			want.WriteByte(c)
			prev = c
		}
		var valid strings.Builder
		for _, c := range want.String() {
			valid.WriteRune(c)
		}
		_, evs := readAll(t, dir, testID)
		var got strings.Builder
		for _, ev := range evs {
			got.WriteString(ev.Data)
		}
		if got.String() != valid.String() {
			t.Fatalf("Output(%q) + Output(%q) recorded %q, want %q", data[:k], data[k:], got.String(), valid.String())
		}
	})
}

// BenchmarkRecordingCost is the whole cost of recording output, from the
// relay's Output call to a closed, compressed (and, for "encrypted", age
// encrypted) file on disk, in CPU seconds per GiB recorded (the figure
// BENCHMARKS.md reports). Each iteration records 8 MiB in 32 KiB chunks
// into a new recording and closes it.
func BenchmarkRecordingCost(b *testing.B) {
	for _, content := range []struct {
		name string
		gen  func(int) []byte
	}{{"terminal", terminalOutput}, {"text", plainText}, {"binary", binaryData}} {
		for _, variant := range []string{"onlcr=false", "onlcr=true", "encrypted"} {
			onlcr := variant != "onlcr=false"
			var to []age.Recipient
			if variant == "encrypted" {
				id, err := age.GenerateX25519Identity()
				if err != nil {
					b.Fatal(err)
				}
				to = []age.Recipient{id.Recipient()}
			}
			b.Run(content.name+"/"+variant, func(b *testing.B) {
				chunk := content.gen(32 << 10)
				const chunks = 256
				b.SetBytes(int64(len(chunk)) * chunks)
				dir := b.TempDir()
				var cpu time.Duration
				n := 0
				for b.Loop() {
					id := fmt.Sprintf("bench-%08d", n)
					n++
					cpu0 := cpuTime(b)
					r, err := NewRecorder(dir, id, Header{Width: 80, Height: 24}, RecorderOptions{ONLCR: onlcr, Encrypt: to})
					if err != nil {
						b.Fatal(err)
					}
					for range chunks {
						r.Output(chunk)
					}
					if err := r.Close(); err != nil {
						b.Fatal(err)
					}
					cpu += cpuTime(b) - cpu0
					b.StopTimer()
					os.RemoveAll(dir)
					b.StartTimer()
				}
				gib := float64(len(chunk)) * chunks * float64(n) / (1 << 30)
				b.ReportMetric(cpu.Seconds()/gib, "cpu-s/GiB")
			})
		}
	}
}

// readPartial is what Open reads of a recording so far, up to any cut.
func readPartial(dir, id string) string {
	rc, err := Open(dir, id)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}
