package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/session/sftp"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// castLog is a Recorder that keeps what it was given, in order.
type castLog struct {
	mu     sync.Mutex
	events []string
	closed bool
}

func (c *castLog) add(kind, s string) {
	c.mu.Lock()
	c.events = append(c.events, kind+":"+s)
	c.mu.Unlock()
}
func (c *castLog) Output(p []byte)       { c.add("o", string(p)) }
func (c *castLog) Input(p []byte)        { c.add("i", string(p)) }
func (c *castLog) Marker(label string)   { c.add("m", label) }
func (c *castLog) Resize(cols, rows int) { c.add("r", fmt.Sprintf("%dx%d", cols, rows)) }
func (c *castLog) Close() error          { c.closed = true; return nil }
func (c *castLog) Err() error            { return nil }

func (c *castLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.events, "|")
}

// rawLog is a RawRecorder that keeps each stream.
type rawLog struct {
	mu      sync.Mutex
	streams [3]bytes.Buffer
	closed  bool
}

func (r *rawLog) Write(s RawStream, p []byte) {
	r.mu.Lock()
	r.streams[s].Write(p)
	r.mu.Unlock()
}
func (r *rawLog) Close() (RawSummary, error) { r.closed = true; return RawSummary{}, nil }

// watched reads everything a broadcaster has kept so far.
func watched(b *broadcaster) string {
	ch, stop := b.subscribe()
	defer stop()
	select {
	case p := <-ch:
		return string(p)
	default:
		return ""
	}
}

func TestByteCounter(t *testing.T) {
	var c byteCounter
	_, _ = c.stdin().Write([]byte("ls\n"))
	_, _ = c.output().Write([]byte("a b c\n"))
	_, _ = c.output().Write([]byte("err\n"))
	if c.in.Load() != 3 || c.out.Load() != 10 {
		t.Fatalf("in %d out %d, want 3 and 10", c.in.Load(), c.out.Load())
	}
}

// Text passes until the first chunk with a NUL; from that chunk on every
// byte is counted and hashed instead, and the turn is noted once.
func TestBinaryDetector(t *testing.T) {
	var text bytes.Buffer
	turns := 0
	d := &binaryDetector{text: writerFunc(func(p []byte) { text.Write(p) }), count: true, onTurn: func() { turns++ }}
	chunks := []string{"log line\n", "tail\x00\x01", "more\n", "\x00"}
	for _, c := range chunks {
		_, _ = d.Write([]byte(c))
	}
	if text.String() != "log line\n" || turns != 1 {
		t.Fatalf("text %q, %d turns", text.String(), turns)
	}
	bin := d.binary()
	want := "tail\x00\x01more\n\x00"
	sum := sha256.Sum256([]byte(want))
	if bin == nil || bin.bytes != int64(len(want)) || bin.sum() != hex.EncodeToString(sum[:]) {
		t.Fatalf("binary part: %+v", bin)
	}

	// Without counting (stdin), the binary part goes nowhere.
	var in bytes.Buffer
	d = &binaryDetector{text: writerFunc(func(p []byte) { in.Write(p) }), onTurn: func() {}}
	_, _ = d.Write([]byte("a\n"))
	_, _ = d.Write([]byte("\x00b"))
	if in.String() != "a\n" || d.binary() != nil {
		t.Fatalf("stdin text %q, binary %v", in.String(), d.binary())
	}
	if (*binaryDetector)(nil).binary() != nil {
		t.Fatal("a missing detector has a binary part")
	}
}

// The cast stage hands each stream to its recorder until it is closed;
// close gives the recorder back once.
func TestCastStage(t *testing.T) {
	rec := &castLog{}
	c := newCastStage(rec)
	_, _ = c.output().Write([]byte("out"))
	_, _ = c.input().Write([]byte("in"))
	c.marker("here")
	c.resize(100, 40)
	if got := c.close(); got != rec {
		t.Fatalf("close returned %v", got)
	}
	if c.close() != nil {
		t.Fatal("second close returned the recorder again")
	}
	_, _ = c.output().Write([]byte("late"))
	c.marker("late")
	if got := rec.String(); got != "o:out|i:in|m:here|r:100x40" {
		t.Fatalf("recorded %q", got)
	}
	var none *castStage
	none.resize(1, 1)
	none.marker("x")
	if none.close() != nil {
		t.Fatal("a missing stage closed something")
	}
}

func TestRawStage(t *testing.T) {
	raw := &rawLog{}
	s := newRawStage(raw)
	_, _ = s.stream(RawStdin).Write([]byte("in"))
	_, _ = s.stream(RawStdout).Write([]byte("out"))
	_, _ = s.stream(RawStderr).Write([]byte("err"))
	if s.close() != raw || s.close() != nil {
		t.Fatal("close must give the store back exactly once")
	}
	_, _ = s.stream(RawStdout).Write([]byte("late"))
	if raw.streams[RawStdin].String() != "in" || raw.streams[RawStdout].String() != "out" || raw.streams[RawStderr].String() != "err" {
		t.Fatalf("streams %q %q %q", raw.streams[0].String(), raw.streams[1].String(), raw.streams[2].String())
	}
}

// Watchers of a session without a pty see \r\n where the user's terminal
// showed it, across chunks; with a pty the bytes pass as they are.
func TestLiveStage(t *testing.T) {
	b := newBroadcaster()
	l := newLiveStage(b, false)
	_, _ = l.Write([]byte("a\r"))
	_, _ = l.Write([]byte("\nb\n"))
	l.note("marker")
	if got := watched(b); got != "a\r\nb\r\n\r\n[marker]\r\n" {
		t.Fatalf("no pty: %q", got)
	}
	b = newBroadcaster()
	_, _ = newLiveStage(b, true).Write([]byte("x\ny"))
	if got := watched(b); got != "x\ny" {
		t.Fatalf("pty: %q", got)
	}
}

// sftpFrame frames one SFTP packet: length, type, id, then the body.
func sftpFrame(typ byte, id uint32, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, id)
	for _, p := range body {
		b = append(b, p...)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(1+len(b)))
	return append(append(out, typ), b...)
}

// The SFTP stage audits each operation once both its request and its
// answer went by, and close waits until every event is on record.
func TestSFTPStage(t *testing.T) {
	var mu sync.Mutex
	var got []storage.Event
	s := newSFTPStage(func(op sftp.Op) storage.Event {
		return storage.Event{Type: "sftp.op", Fields: map[string]any{"op": op.Op, "path": op.Path, "ok": op.OK}}
	}, func(ev storage.Event) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	})
	path := binary.BigEndian.AppendUint32(nil, 4)
	path = append(path, "/tmp"...)
	attrs := binary.BigEndian.AppendUint32(nil, 0)
	_, _ = s.fromClient().Write(sftpFrame(14, 7, path, attrs)) // SSH_FXP_MKDIR
	_, _ = s.fromServer().Write(sftpFrame(101, 7, binary.BigEndian.AppendUint32(nil, 0), []byte{0, 0, 0, 0, 0, 0, 0, 0}))
	s.close()
	s.close() // safe twice
	if len(got) != 1 || got[0].Fields["op"] != "mkdir" || got[0].Fields["path"] != "/tmp" || got[0].Fields["ok"] != true {
		t.Fatalf("audited %+v", got)
	}
	(*sftpStage)(nil).close()
}

// compose wires each kind of session's streams: what reaches the cast,
// the raw store and the watchers, and where a binary detector sits. How a
// session is treated comes from its kind and pty alone.
func TestCompose(t *testing.T) {
	tests := []struct {
		name       string
		kind       string
		pty        bool
		stdin      string
		stdout     []string
		cast       string // what the recorder got
		raw        [3]string
		watched    string
		binary     string // bytes counted as binary stdout
		noDetector bool
	}{
		{name: "pty shell", kind: kindShell, pty: true, stdin: "ls\r", stdout: []string{"a\r\n", "\x00bin\n"},
			cast: "i:ls\r|o:a\r\n|o:\x00bin\n", watched: "a\r\n\x00bin\n", noDetector: true},
		{name: "exec turning binary", kind: kindExec, stdin: "q\n", stdout: []string{"text\n", "\x00bin", "more"},
			cast: "i:q\n|o:text\n|m:" + binaryMarker, raw: [3]string{"q\n", "text\n\x00binmore", "e\n"},
			watched: "text\r\n\r\n[" + binaryMarker + "]\r\n", binary: "\x00binmore"},
		{name: "exec with binary stdin", kind: kindExec, stdin: "a\x00b", stdout: []string{"ok\n"},
			cast: "m:" + binaryInputMarker + "|o:ok\n", raw: [3]string{"a\x00b", "ok\n", "e\n"}, watched: "ok\r\n"},
		{name: "scp", kind: kindSCP, stdin: "C0644 3 f\n\x00", stdout: []string{"\x00"},
			raw: [3]string{"C0644 3 f\n\x00", "\x00", "e\n"}, watched: "\x00", noDetector: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroadcaster()
			st := &sessionStages{live: newLiveStage(b, tt.pty)}
			rec := &castLog{}
			if !isTransfer(tt.kind) {
				st.cast = newCastStage(rec)
			}
			raw := &rawLog{}
			if !tt.pty {
				st.raw = newRawStage(raw)
			}
			s := st.compose(tt.kind, tt.pty)
			_, _ = s.stdin.Write([]byte(tt.stdin))
			n := len(tt.stdin)
			for _, c := range tt.stdout {
				_, _ = s.stdout.Write([]byte(c))
				n += len(c)
			}
			if !tt.pty {
				// stderr last, so the cast's order is the test's.
				_, _ = s.stderr.Write([]byte("e\n"))
				n += 2
				tt.cast = strings.TrimPrefix(tt.cast+"|o:e\n", "|")
				tt.watched += "e\r\n"
			}
			if got := rec.String(); !isTransfer(tt.kind) && got != tt.cast {
				t.Errorf("cast %q, want %q", got, tt.cast)
			}
			for i := range raw.streams {
				if got := raw.streams[i].String(); got != tt.raw[i] {
					t.Errorf("raw stream %d %q, want %q", i, got, tt.raw[i])
				}
			}
			if got := watched(b); got != tt.watched {
				t.Errorf("watched %q, want %q", got, tt.watched)
			}
			if got := st.count.in.Load() + st.count.out.Load(); got != int64(n) {
				t.Errorf("counted %d bytes, want %d", got, n)
			}
			if tt.noDetector != (st.binOut == nil) {
				t.Errorf("stdout detector: %v", st.binOut)
			}
			bin := st.binOut.binary()
			if (bin == nil) != (tt.binary == "") || bin != nil && bin.bytes != int64(len(tt.binary)) {
				t.Errorf("binary part %+v, want %d bytes", bin, len(tt.binary))
			}
		})
	}
}

func TestONLCR(t *testing.T) {
	tests := []struct {
		chunks []string
		want   string
	}{
		{[]string{"a\nb\n"}, "a\r\nb\r\n"},
		{[]string{"a\r\nb"}, "a\r\nb"},
		{[]string{"a\r", "\nb\n"}, "a\r\nb\r\n"},
		{[]string{"no newline"}, "no newline"},
		{[]string{"\n\n"}, "\r\n\r\n"},
		{[]string{"x\r", "\n", "\n", "y\r\r\n\r"}, "x\r\n\r\ny\r\r\n\r"},
		{[]string{"\r", "a\n"}, "\ra\r\n"},
		{[]string{"ab\ncd\r\nef"}, "ab\r\ncd\r\nef"},
	}
	for _, tt := range tests {
		var o onlcr
		got := ""
		for _, c := range tt.chunks {
			got += string(o.apply([]byte(c)))
		}
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.chunks, got, tt.want)
		}
	}
}
