package termsafe

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// attacks are the inputs every printer's test feeds through: what a user
// can put in a command, a reason or a login to act on a reader's terminal.
var attacks = []struct{ name, in, want string }{
	{"OSC 52 clipboard write", "\x1b]52;c;ZWNobyBwd25lZA==\a", `\x1b]52;c;ZWNobyBwd25lZA==\a`},
	{"OSC 0 window title", "\x1b]0;owned\x1b\\", `\x1b]0;owned\x1b\`},
	{"CSI erase line", "ok\x1b[2K\x1b[1Gfake", `ok\x1b[2K\x1b[1Gfake`},
	{"carriage return overwrite", "rm -rf /\rls", `rm -rf /\rls`},
	{"newline forges a row", "a\nb", `a\nb`},
	{"tab", "a\tb", `a\tb`},
	{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
	{"C1 CSI as UTF-8", "a\u009b31mred", `a\u009b31mred`},
	{"raw 8-bit CSI byte (invalid UTF-8)", "a\x9b31m", `a\x9b31m`},
	{"bidi override", "txt.\u202eexe", `txt.\u202eexe`},
	{"bidi isolates", "\u2066x\u2069", `\u2066x\u2069`},
	{"zero width space and BOM", "a\u200bb\ufeff", `a\u200bb\ufeff`},
	{"tag character", "a\U000e0041", `a\U000e0041`},
	{"line separator", "a\u2028b", `a\u2028b`},
	{"truncated rune", "ab\xe2\x82", `ab\xe2\x82`},
	{"printable UTF-8 kept", "grüße — データ ✓ 🙂", "grüße — データ ✓ 🙂"},
	{"backslash kept", `C:\dir sed 's/\s//'`, `C:\dir sed 's/\s//'`},
	{"empty", "", ""},
}

func TestString(t *testing.T) {
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			got := String(tc.in)
			if got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if Safe(tc.in) != (tc.in == tc.want) {
				t.Errorf("Safe(%q) = %v", tc.in, Safe(tc.in))
			}
			checkInert(t, got)
		})
	}
}

// checkInert fails if s holds anything a terminal would act on or hide.
func checkInert(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("output %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200b {
			t.Errorf("output %q holds %U", s, r)
		}
	}
}

func TestQuoteIsStrconvQuote(t *testing.T) {
	for _, tc := range attacks {
		if got, want := Quote(tc.in), strconv.Quote(tc.in); got != want {
			t.Errorf("Quote(%q) = %s, strconv.Quote = %s", tc.in, got, want)
		}
	}
}

func TestStrings(t *testing.T) {
	in := []string{"dba", "x\x1b]0;t\a"}
	got := Strings(in)
	if got[0] != "dba" || got[1] != `x\x1b]0;t\a` || in[1] != "x\x1b]0;t\a" {
		t.Fatalf("Strings = %q (input now %q)", got, in)
	}
}

func TestJSON(t *testing.T) {
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			v := map[string]string{"command": tc.in}
			raw, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			safe := JSON(raw)
			checkInert(t, string(safe))
			var back, want map[string]string
			if err := json.Unmarshal(safe, &back); err != nil {
				t.Fatalf("JSON(%s) = %s: not JSON: %v", raw, safe, err)
			}
			_ = json.Unmarshal(raw, &want)
			if back["command"] != want["command"] {
				t.Errorf("JSON changed the value: %q, want %q", back["command"], want["command"])
			}
		})
	}
}

func TestWriterKeepsLinesAndJoinsSplitRunes(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	in := "id: k3x\nreason: \x1b]52;c;eA==\a ü\u202e\n"
	// One byte at a time: every rune and every sequence is split.
	for i := 0; i < len(in); i++ {
		if _, err := w.Write([]byte{in[i]}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = w.Write([]byte("\xe2\x82"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "id: k3x\nreason: \\x1b]52;c;eA==\\a ü\\u202e\n\\xe2\\x82"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		checkInert(t, line)
	}
}

func FuzzString(f *testing.F) {
	for _, tc := range attacks {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		checkInert(t, out)
		if Safe(s) != (out == s) {
			t.Fatalf("Safe(%q) = %v but String = %q", s, Safe(s), out)
		}
		if String(out) != out {
			t.Fatalf("String is not idempotent on %q: %q then %q", s, out, String(out))
		}
		if q := Quote(s); q != strconv.Quote(s) {
			t.Fatalf("Quote(%q) = %s, strconv.Quote = %s", s, q, strconv.Quote(s))
		}
		if raw, err := json.Marshal(s); err == nil {
			safe := JSON(raw)
			checkInert(t, string(safe))
			var back, want string
			_ = json.Unmarshal(raw, &want)
			if err := json.Unmarshal(safe, &back); err != nil || back != want {
				t.Fatalf("JSON round trip of %q: %q, want %q (%v)", s, back, want, err)
			}
		}
	})
}

func FuzzWriter(f *testing.F) {
	f.Add("ü\u202e\n\x1b]0;x\a", 1)
	f.Add("ab\xe2\x82\xac\n", 3)
	f.Fuzz(func(t *testing.T, s string, cut int) {
		if cut < 0 || cut > len(s) {
			return
		}
		var whole, split bytes.Buffer
		w := NewWriter(&whole)
		_, _ = w.Write([]byte(s))
		_ = w.Flush()
		w = NewWriter(&split)
		_, _ = w.Write([]byte(s[:cut]))
		_, _ = w.Write([]byte(s[cut:]))
		_ = w.Flush()
		if whole.String() != split.String() {
			t.Fatalf("%q split at %d: %q, whole: %q", s, cut, split.String(), whole.String())
		}
		for _, line := range strings.Split(whole.String(), "\n") {
			checkInert(t, line)
			if line != String(line) {
				t.Fatalf("line %q is not what String makes of it", line)
			}
		}
	})
}
