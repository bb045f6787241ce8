package session

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"
)

const validHeader = `{"version": 2, "width": 80, "height": 24, "timestamp": 1700000000, "env": {"TERM": "xterm", "SHELL": null}}` + "\n"

func collect(t *testing.T, input string) (Header, []Event, error) {
	t.Helper()
	h, events, err := Parse(strings.NewReader(input))
	if err != nil {
		return h, nil, err
	}
	var evs []Event
	for ev, err := range events {
		if err != nil {
			return h, evs, err
		}
		evs = append(evs, ev)
	}
	return h, evs, nil
}

func TestParseAccepts(t *testing.T) {
	input := validHeader +
		`[0.1, "o", "hi\u001b[0m"]` + "\n" +
		`[0.1, "i", "x"]` + "\n" +
		`[1.5e0, "r", "132x43"]` + "\n" +
		`[2, "m", "chapter"]` // no final newline is fine for a complete line
	h, evs, err := collect(t, input)
	if err != nil {
		t.Fatal(err)
	}
	if h.Width != 80 || h.Env["TERM"] != "xterm" {
		t.Errorf("header %+v", h)
	}
	want := []Event{
		{100 * time.Millisecond, "o", "hi\x1b[0m"},
		{100 * time.Millisecond, "i", "x"},
		{1500 * time.Millisecond, "r", "132x43"},
		{2 * time.Second, "m", "chapter"},
	}
	if !equalEvents(evs, want) {
		t.Errorf("events %q, want %q", evs, want)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		truncated   bool
	}{
		{"empty", "", false},
		{"binary garbage", "\x00\x01\x02garbage\xff", false},
		{"json array header", "[2, 80, 24]\n", false},
		{"version 1", `{"version": 1, "width": 80, "height": 24, "stdout": []}` + "\n", false},
		{"version 3", `{"version": 3, "term": {"cols": 80, "rows": 24}}` + "\n", false},
		{"no size", `{"version": 2}` + "\n", false},
		{"zero width", `{"version": 2, "width": 0, "height": 24}` + "\n", false},
		{"huge height", `{"version": 2, "width": 80, "height": 100000}` + "\n", false},
		{"string width", `{"version": 2, "width": "80", "height": 24}` + "\n", false},
		{"negative timestamp", `{"version": 2, "width": 80, "height": 24, "timestamp": -1}` + "\n", false},
		{"header trailing garbage", `{"version": 2, "width": 80, "height": 24} x` + "\n", false},
		{"cut header", `{"version": 2, "wid`, true},
		{"event not array", validHeader + `{"t": 1}` + "\n", false},
		{"event two fields", validHeader + `[1, "o"]` + "\n", false},
		{"event four fields", validHeader + `[1, "o", "a", "b"]` + "\n", false},
		{"time as string", validHeader + `["1", "o", "a"]` + "\n", false},
		{"negative time", validHeader + `[-1, "o", "a"]` + "\n", false},
		{"absurd time", validHeader + `[1e300, "o", "a"]` + "\n", false},
		{"time goes back", validHeader + `[2, "o", "a"]` + "\n" + `[1, "o", "b"]` + "\n", false},
		{"unknown type", validHeader + `[1, "x", "a"]` + "\n", false},
		{"data not string", validHeader + `[1, "o", 5]` + "\n", false},
		{"bad resize", validHeader + `[1, "r", "80 by 24"]` + "\n", false},
		{"resize sign", validHeader + `[1, "r", "+80x24"]` + "\n", false},
		{"resize zero", validHeader + `[1, "r", "0x24"]` + "\n", false},
		{"raw control in string", validHeader + "[1, \"o\", \"a\x01\"]\n", false},
		{"blank line", validHeader + "\n" + `[1, "o", "a"]` + "\n", false},
		{"cut last event", validHeader + `[1, "o", "a"]` + "\n" + `[2, "o", "b`, true},
		{"corrupt line before end", validHeader + `[1, "o", "a` + "\n" + `[2, "o", "b"]` + "\n", false},
		{"line too long", validHeader + `[1, "o", "` + strings.Repeat("a", maxLine) + `"]` + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := collect(t, tc.input)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := errors.Is(err, ErrTruncated); got != tc.truncated {
				t.Errorf("error %v: truncated = %v, want %v", err, got, tc.truncated)
			}
			if !tc.truncated && !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
		})
	}
}

func TestParseStopsAtFirstBadEvent(t *testing.T) {
	input := validHeader + `[1, "o", "a"]` + "\n" + `[2, "o", "b"]` + "\n" + `[3, "o", "c`
	_, evs, err := collect(t, input)
	if !errors.Is(err, ErrTruncated) || len(evs) != 2 || evs[1].Data != "b" {
		t.Errorf("events %q, err %v", evs, err)
	}
	// Errors are sticky on the Reader.
	rd, err := NewReader(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := rd.Next(); err != nil {
			t.Fatal(err)
		}
	}
	_, err1 := rd.Next()
	_, err2 := rd.Next()
	if !errors.Is(err1, ErrTruncated) || err1 != err2 {
		t.Errorf("errors %v then %v", err1, err2)
	}
}

func TestParseGzipAndTruncatedGzip(t *testing.T) {
	plain := validHeader + `[1, "o", "zipped"]` + "\n"
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zw.Write([]byte(plain))
	zw.Close()
	_, evs, err := collect(t, zbuf.String())
	if err != nil || len(evs) != 1 || evs[0].Data != "zipped" {
		t.Fatalf("gzip: %q %v", evs, err)
	}
	cut := zbuf.String()[:zbuf.Len()-10]
	if _, _, err := collect(t, cut); err == nil {
		t.Error("truncated gzip accepted")
	}
}

func TestExport(t *testing.T) {
	input := `{"version":2,"width":80,"height":24,"title":"<db-1> & co"}` + "\n" +
		`[0.1234567, "o", "a\u00e9\u001b[1m"]` + "\n" +
		`[1, "r", "100x50"]` + "\n"
	var out bytes.Buffer
	if err := Export(&out, strings.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	want := `{"version":2,"width":80,"height":24,"title":"<db-1> & co"}` + "\n" +
		`[0.123457, "o", "aé\u001b[1m"]` + "\n" +
		`[1.000000, "r", "100x50"]` + "\n"
	if out.String() != want {
		t.Errorf("export:\n%s\nwant:\n%s", out.String(), want)
	}
	// Export of its own output is the identity.
	var again bytes.Buffer
	if err := Export(&again, bytes.NewReader(out.Bytes())); err != nil || again.String() != out.String() {
		t.Errorf("re-export differs (%v):\n%s", err, again.String())
	}
	// A recording cut by a crash exports up to the cut and says so.
	var cut bytes.Buffer
	err := Export(&cut, strings.NewReader(input+`[2, "o", "par`))
	if !errors.Is(err, ErrTruncated) || cut.String() != want {
		t.Errorf("truncated export: %v\n%s", err, cut.String())
	}
	if err := Export(io.Discard, strings.NewReader("not a recording")); !errors.Is(err, ErrFormat) {
		t.Errorf("garbage export: %v", err)
	}
}

// TestAsciinemaCat checks our files against the reference implementation.
func TestAsciinemaCat(t *testing.T) {
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		t.Skip("asciinema binary not installed (apt-get install asciinema); skipping compatibility check")
	}
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{RecordInput: true})
	r.Output([]byte("hello \x1b[1mworld\x1b[0m\r\n"))
	r.Input([]byte("typed"))
	r.Resize(90, 30)
	r.Output([]byte("héllo ✓ \"q\" \\ \x07\r\n"))

	cat := func(file string) string {
		t.Helper()
		// asciinema cat opens /dev/tty to watch for Ctrl-C, so it needs a
		// controlling terminal; its output goes to a plain buffer.
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("open pty: %v", err)
		}
		defer ptmx.Close()
		defer tty.Close()
		var out, stderr bytes.Buffer
		cmd := exec.Command(bin, "cat", file)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &out, &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Run(); err != nil {
			t.Fatalf("asciinema cat %s: %v\n%s", file, err, stderr.Bytes())
		}
		return out.String()
	}
	want := "hello \x1b[1mworld\x1b[0m\r\nhéllo ✓ \"q\" \\ \x07\r\n"

	// The live file, as a crashed bastion would leave it, once flushed.
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	// zstd -dc reads what the kill leaves up to its cut; asciinema does
	// not read zstd itself.
	live, err := exec.Command("zstd", "-dc", r.Path()).Output()
	if err != nil {
		t.Fatalf("zstd -dc %s: %v", r.Path(), err)
	}
	livePlain := filepath.Join(t.TempDir(), "live.cast")
	if err := os.WriteFile(livePlain, live, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := cat(livePlain); got != want {
		t.Errorf("asciinema cat of live file = %q, want %q", got, want)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(dir, testID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	exported := filepath.Join(t.TempDir(), "export.cast")
	f, err := os.Create(exported)
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(f, rc); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := cat(exported); got != want {
		t.Errorf("asciinema cat of export = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validHeader + `[0.5, "o", "hi\r\n"]` + "\n" + `[1, "r", "80x24"]` + "\n"))
	f.Add([]byte(validHeader + `[0.1234567, "m", ""]`))
	f.Add([]byte(validHeader + `[1, "o", "\ud800"]` + "\n"))
	f.Add([]byte(`{"version":2,"width":1,"height":1,"idle_time_limit":2.5,"duration":1e-7}` + "\n" + `[0, "i", "x"]`))
	f.Add([]byte(validHeader + `[1, "o", "a`))
	f.Add([]byte("\x1f\x8b\x08\x00garbage"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, events, err := Parse(bytes.NewReader(data))
		if err != nil {
			// Compressed or encrypted input may also fail in the decoder.
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTruncated) && (len(data) == 0 || !strings.ContainsRune("\x1f\x28g", rune(data[0]))) {
				t.Fatalf("header error %v wraps neither ErrFormat nor ErrTruncated", err)
			}
			return
		}
		var last time.Duration
		for ev, err := range events {
			if err != nil {
				break
			}
			if ev.Time < last || ev.Time < 0 {
				t.Fatalf("event time %v after %v", ev.Time, last)
			}
			last = ev.Time
			if ev.Type == EventResize {
				if _, _, ok := ev.Size(); !ok {
					t.Fatalf("resize %q accepted", ev.Data)
				}
			}
		}
		// Whatever parses must export to a file that parses again and is a
		// fixed point of Export.
		var once, twice bytes.Buffer
		_ = Export(&once, bytes.NewReader(data)) // may stop at a bad event; what it wrote must be valid
		if err := Export(&twice, bytes.NewReader(once.Bytes())); err != nil {
			t.Fatalf("re-export of export output failed: %v\n%q", err, once.Bytes())
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("export not idempotent:\n%q\n%q", once.Bytes(), twice.Bytes())
		}
	})
}

// special8 must find exactly the first byte that needs attention (its
// caller skips to it), and none when there is none.
func TestSpecial8MatchesBytewise(t *testing.T) {
	plain := func(b byte) bool { return b >= 0x20 && b < 0x80 && b != '"' && b != '\\' }
	check := func(w [8]byte) {
		first := 8
		for i, b := range w {
			if !plain(b) {
				first = i
				break
			}
		}
		m := special8(binary.LittleEndian.Uint64(w[:]))
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != first {
			t.Fatalf("special8(%q) points at byte %d, want %d", w, got, first)
		}
	}
	for pos := range 8 {
		for b := range 256 {
			w := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			w[pos] = byte(b)
			check(w)
			w = [8]byte{0x1f, 0x21, 0x5b, 0x5d, 0x7f, 0x20, 0x23, 0x5d}
			w[pos] = byte(b)
			check(w)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		var w [8]byte
		for i := range w {
			w[i] = byte(rng.IntN(0x90))
		}
		check(w)
	}
}

func TestJSONClassTable(t *testing.T) {
	if len(jsonClass) != 256 {
		t.Fatalf("table has %d entries", len(jsonClass))
	}
	for b := range 256 {
		var want byte
		switch {
		case b < 0x20 || b == '"' || b == '\\':
			want = '1'
		case b < 0x80:
			want = '0'
		case b >= 0xc2 && b <= 0xf4:
			want = '2'
		default:
			want = '3'
		}
		if jsonClass[b] != want {
			t.Errorf("jsonClass[%#x] = %c, want %c", b, jsonClass[b], want)
		}
	}
}

// TestAppendJSONTextMatchesEncodingJSON checks, on mixed and random input,
// that the output is a JSON string that decodes to the input with each
// invalid byte replaced by U+FFFD.
func TestAppendJSONTextMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	inputs := []string{"", "plain", "tab\there \"q\" \\ \x00\x1f\x7f", "é✓𝄞\xff\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80", "\xe2\x82"}
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		got := appendJSONText(nil, []byte(in))
		var back string
		if err := json.Unmarshal(append(append([]byte{'"'}, got...), '"'), &back); err != nil {
			t.Fatalf("appendJSONText(%q) = %q: not a JSON string: %v", in, got, err)
		}
		// Each invalid byte becomes one U+FFFD, as utf8.DecodeRune reads it.
		wantPerByte := []rune{}
		for i := 0; i < len(in); {
			r, size := utf8.DecodeRuneInString(in[i:])
			wantPerByte = append(wantPerByte, r)
			i += size
		}
		if back != string(wantPerByte) {
			t.Fatalf("appendJSONText(%q) decodes to %q, want %q", in, back, string(wantPerByte))
		}
	}
}
