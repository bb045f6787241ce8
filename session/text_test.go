package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStripANSI(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "hello world\n", "hello world\n"},
		{"sgr", "\x1b[1;31merror\x1b[0m: x", "error: x"},
		{"crlf", "a\r\nb\r\n", "a\nb\n"},
		{"lone cr redraw", "10%\r50%\r100%\n", "10%\n50%\n100%\n"},
		{"cr then erase then lf", "x\r\x1b[Ky\r\n", "x\ny\n"},
		{"tab kept", "a\tb", "a\tb"},
		{"cursor moves", "\x1b[2J\x1b[H\x1b[10;20Htext\x1b[?25l", "text"},
		{"osc title bel", "\x1b]0;user@host: ~\x07prompt$ ", "prompt$ "},
		{"osc st", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"dcs", "a\x1bP$q\"p\x1b\\b", "ab"},
		{"apc pm sos", "\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\ok", "ok"},
		{"charset", "\x1b(0lqk\x1b(B", "lqk"},
		{"two-byte esc", "\x1b7x\x1b8\x1bM", "x"},
		{"other controls dropped", "a\x07\x00\x08b\x7f", "ab"},
		{"c1 controls dropped", "a\u009b31mb\u009dc", "a31mbc"},
		{"utf8 kept", "héllo ✓ 𝄞", "héllo ✓ 𝄞"},
		{"invalid utf8", "a\xffb", "a\uFFFDb"},
		{"cut rune at end", "a\xe2\x82", "a\uFFFD"},
		{"unfinished csi dropped", "abc\x1b[1;3", "abc"},
		{"esc esc", "\x1b\x1b[31mx", "x"},
		{"csi cancelled by can", "\x1b[31\x18x", "x"},
		{"control inside csi", "\x1b[3\n1mx", "\n1mx"},
		{"huge csi", "\x1b[" + strings.Repeat("1;", 1000) + "mx", "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(StripANSI([]byte(tc.in))); got != tc.want {
				t.Errorf("StripANSI(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// castOf builds a recording from output event data.
func castOf(outputs ...string) string {
	var b strings.Builder
	b.WriteString(validHeader)
	for i, o := range outputs {
		data, _ := json.Marshal(o)
		fmt.Fprintf(&b, "[%d, \"o\", %s]\n", i, data)
	}
	return b.String()
}

func TestGrep(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cast   string
		needle string
		want   bool
	}{
		{"simple", castOf("hello world"), "world", true},
		{"absent", castOf("hello world"), "planet", false},
		{"case insensitive", castOf("DROP TABLE users;"), "drop table", true},
		{"unicode case", castOf("ÉTÉ"), "été", true},
		{"across events", castOf("rm -r", "f /var/lib"), "rm -rf /var", true},
		{"across three events", castOf("pa", "ss", "wd"), "passwd", true},
		{"through sgr", castOf("\x1b[31mDANGER\x1b[0m zone"), "danger zone", true},
		{"through escape split over events", castOf("cat /etc/\x1b[", "1mshadow"), "/etc/shadow", true},
		{"escape inside word", castOf("sh\x1b[0mado\x1b]0;t\x07w"), "shadow", true},
		{"osc payload not text", castOf("\x1b]0;secret-title\x07"), "secret", false},
		{"input events searched", validHeader + `[0.1, "i", "typed-secret"]` + "\n", "typed-secret", true},
		{"input split over events", validHeader + `[0.1, "i", "typed-"]` + "\n" + `[0.2, "o", "noise"]` + "\n" + `[0.3, "i", "secret"]` + "\n", "typed-secret", true},
		{"no match across output and input", validHeader + `[0.1, "o", "typed-"]` + "\n" + `[0.3, "i", "secret"]` + "\n", "typed-secret", false},
		{"empty needle", castOf("x"), "", true},
		{"match in last event", castOf("a", "b", "needle"), "needle", true},
		{"truncated recording searched up to the cut", castOf("found it") + `[9, "o", "cut`, "found", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Grep(strings.NewReader(tc.cast), tc.needle)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Grep(%q) = %v, want %v", tc.needle, got, tc.want)
			}
		})
	}
	if _, err := Grep(strings.NewReader("garbage"), "x"); err == nil {
		t.Error("Grep of garbage succeeded")
	}
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		// Kept: what draws the screen.
		{"text", "hello\r\n", "hello\r\n"},
		{"sgr colours", "\x1b[1;38;5;196mred\x1b[0m \x1b[38:2::255:0:0mtc\x1b[m", "\x1b[1;38;5;196mred\x1b[0m \x1b[38:2::255:0:0mtc\x1b[m"},
		{"cursor movement", "\x1b[H\x1b[10;5H\x1b[3A\x1b[2C\x1b[G\x1b[5d", "\x1b[H\x1b[10;5H\x1b[3A\x1b[2C\x1b[G\x1b[5d"},
		{"erase", "\x1b[2J\x1b[K\x1b[1K\x1b[3X\x1b[?2K", "\x1b[2J\x1b[K\x1b[1K\x1b[3X\x1b[?2K"},
		{"insert delete scroll", "\x1b[2L\x1b[M\x1b[4P\x1b[@\x1b[2S\x1b[T\x1b[5;20r", "\x1b[2L\x1b[M\x1b[4P\x1b[@\x1b[2S\x1b[T\x1b[5;20r"},
		{"alt screen and cursor", "\x1b[?1049h\x1b[?25l\x1b[?25h\x1b[?1049l", "\x1b[?1049h\x1b[?25l\x1b[?25h\x1b[?1049l"},
		{"cursor style", "\x1b[2 q", "\x1b[2 q"},
		{"save restore", "\x1b7\x1b8\x1b[s\x1b[u", "\x1b7\x1b8\x1b[s\x1b[u"},
		{"line drawing", "\x1b(0lqqk\x1b(B\x0e\x0f", "\x1b(0lqqk\x1b(B\x0e\x0f"},
		{"backspace tab", "ab\bc\td", "ab\bc\td"},
		{"utf8", "héllo ✓", "héllo ✓"},

		// Dropped: attacks on the viewer's terminal.
		{"osc 52 clipboard write bel", "a\x1b]52;c;ZWNobyBwd25lZA==\x07b", "ab"},
		{"osc 52 clipboard write st", "a\x1b]52;c;ZWNobyBwd25lZA==\x1b\\b", "ab"},
		{"osc 52 clipboard query", "\x1b]52;c;?\x07", ""},
		{"osc title set", "\x1b]0;pwned\x07\x1b]2;x\x07", ""},
		{"osc hyperlink", "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"osc colour query", "\x1b]10;?\x07\x1b]4;1;?\x07", ""},
		{"osc 50 font", "\x1b]50;?\x07", ""},
		{"dcs decrqss", "\x1bP$qm\x1b\\", ""},
		{"dcs tmux passthrough", "\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\", ""},
		{"dcs sixel", "\x1bPq#0;2;0;0;0~~\x1b\\x", "x"},
		{"apc", "\x1b_Gf=100;AAAA\x1b\\", ""},
		{"dsr cursor position", "\x1b[6n\x1b[5n\x1b[?6n", ""},
		{"primary da", "\x1b[c\x1b[0c", ""},
		{"secondary tertiary da", "\x1b[>c\x1b[>0c\x1b[=c", ""},
		{"window ops", "\x1b[8;100;200t\x1b[21t\x1b[14t\x1b[2t", ""},
		{"decrqm", "\x1b[?1000$p\x1b[4$p", ""},
		{"decreqtparm", "\x1b[x", ""},
		{"xtversion", "\x1b[>q", ""},
		{"kitty keyboard query", "\x1b[?u\x1b[>1u", ""},
		{"mouse and focus reporting", "\x1b[?1000h\x1b[?1006h\x1b[?1004h\x1b[?2004h", ""},
		{"mixed modes dropped whole", "\x1b[?25;1000h", ""},
		{"deccolm resize", "\x1b[?3h", ""},
		{"decid", "\x1bZ", ""},
		{"full reset", "\x1bc", ""},
		{"enq answerback", "a\x05b", "ab"},
		{"bell", "\x07", ""},
		{"c1 csi", "\u009b6n", "6n"},
		{"c1 osc", "\u009d52;c;eA==\u009c", "52;c;eA=="},
		{"raw 8-bit csi", "\x9b6n", "\uFFFD6n"},
		{"huge repeat", "a\x1b[999999999b", "a"},
		{"too many params", "\x1b[" + strings.Repeat("1;", 40) + "1m", ""},
		{"highlight mouse tracking", "\x1b[1;2;3;4;5T", ""},
		{"unfinished at end", "ok\x1b[6", "ok"},
		{"lone esc at end", "ok\x1b", "ok"},
		{"esc inside osc ends it", "\x1b]52;c;\x1b[6nX", "X"},
		{"esc restarts", "\x1b\x1b[6n", ""},
		{"control inside csi cancels", "\x1b[6\rn", "\rn"},
		{"can inside osc", "\x1b]52;c;\x18visible", "visible"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Sanitize([]byte(tc.in)))
			if got != tc.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("output not valid UTF-8")
			}
		})
	}
}

// TestSanitizerAcrossWrites feeds attacks split at every byte boundary:
// no split may make a dropped sequence appear, and kept ones survive.
func TestSanitizerAcrossWrites(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\x1b]52;c;ZWNobw==\x07b", "ab"},
		{"\x1b[6nx", "x"},
		{"\x1bP$qm\x1b\\y", "y"},
		{"\x1b[1;31mred\x1b[0m", "\x1b[1;31mred\x1b[0m"},
		{"é✓𝄞", "é✓𝄞"},
	} {
		for i := 0; i <= len(tc.in); i++ {
			for j := i; j <= len(tc.in); j++ {
				var s Sanitizer
				out := s.Append(nil, []byte(tc.in[:i]))
				out = s.Append(out, []byte(tc.in[i:j]))
				out = s.Append(out, []byte(tc.in[j:]))
				if string(out) != tc.want {
					t.Errorf("split %q at %d,%d: got %q, want %q", tc.in, i, j, out, tc.want)
				}
			}
		}
	}
}

func FuzzSanitize(f *testing.F) {
	f.Add([]byte("\x1b]52;c;eA==\x07\x1b[6n\x1b[1mok"))
	f.Add([]byte("\x1bP$q\x1b\\\u009b6n\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := Sanitize(in)
		if !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8 out of %q", in)
		}
		// Every ESC in the output starts a sequence that sanitizes to itself;
		// so the output is a fixed point.
		if again := Sanitize(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		for _, r := range string(out) {
			if r >= 0x80 && r <= 0x9f {
				t.Fatalf("C1 control %U in output of %q", r, in)
			}
		}
		if bytes.Contains(out, []byte("\x1b]")) || bytes.Contains(out, []byte("\x1bP")) || bytes.Contains(out, []byte("\x05")) {
			t.Fatalf("string sequence or ENQ kept: %q", out)
		}
	})
}
