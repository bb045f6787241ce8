// Package termsafetest gives every printer's test the same hostile inputs
// and the same check that none of them reached the output raw.
package termsafetest

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

// Payload is text a user could choose that acts on, or hides from, the
// terminal of whoever reads it. Printers' tests put it in every field a
// user controls and run Inert over the output.
const Payload = "\x1b]52;c;cHduZWQ=\a\x1b]0;title\x1b\\\x1b[2J\rfake\u009b31m\u202eexe\x9b\x00\x7f"

// Attacks are single attacks, for table tests.
var Attacks = map[string]string{
	"OSC 52 clipboard":    "\x1b]52;c;cHduZWQ=\a",
	"OSC 0 title":         "\x1b]0;title\x1b\\",
	"CSI clear screen":    "\x1b[2J\x1b[H",
	"CR overwrite":        "real\rfake",
	"BEL":                 "\a",
	"C1 CSI (UTF-8)":      "\u009b31m",
	"raw 8-bit CSI":       "\x9b31m",
	"bidi override":       "txt\u202eexe",
	"newline forges line": "a\nforged",
}

// Inert fails t if out holds a byte or rune a terminal would act on or
// that hides text: C0 controls other than newline, DEL, C1 controls, format
// characters (bidi overrides, zero-width), or invalid UTF-8. what names
// the output in the failure.
func Inert(t testing.TB, what, out string) {
	t.Helper()
	for i, r := range out {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(out[i:]); n == 1 {
				t.Errorf("%s: invalid UTF-8 byte %#x at %d in %q", what, out[i], i, out)
				return
			}
		}
		if r == '\n' {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Cf, r) {
			t.Errorf("%s: %U at %d reached the output: %q", what, r, i, out)
			return
		}
	}
}
