package termsafe

import (
	"io"
	"unicode"
	"unicode/utf8"
)

// String returns s with every rune that could act on a terminal, or hide
// from the person reading it, written as a visible escape. A string that
// needs none is returned as is.
func String(s string) string {
	if Safe(s) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+16), s, false, false))
}

// Strings applies String to each element, in a new slice.
func Strings(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = String(s)
	}
	return out
}

// Quote returns s in double quotes with quotes, backslashes and everything
// String escapes escaped: exact and unambiguous, as strconv.Quote.
func Quote(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = appendEscaped(b, s, true, false)
	return string(append(b, '"'))
}

// Safe reports whether String(s) == s.
func Safe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsPrint(r) {
			return false
		}
		i += n
	}
	return true
}

// appendEscaped appends s to b with unsafe runes escaped; quoted also
// escapes '"' and '\'. keepNewlines leaves '\n' alone (for the Writer,
// which keeps the line structure of multi-line output).
func appendEscaped(b []byte, s string, quoted, keepNewlines bool) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\x`...)
			b = append(b, hex[s[i]>>4], hex[s[i]&0xf])
		case quoted && (r == '"' || r == '\\'):
			b = append(b, '\\', byte(r))
		case r == '\n' && keepNewlines:
			b = append(b, '\n')
		case unicode.IsPrint(r):
			b = append(b, s[i:i+n]...)
		default:
			b = appendRuneEscape(b, r)
		}
		i += n
	}
	return b
}

const hex = "0123456789abcdef"

// appendRuneEscape writes r the way strconv.Quote does.
func appendRuneEscape(b []byte, r rune) []byte {
	switch r {
	case '\a':
		return append(b, `\a`...)
	case '\b':
		return append(b, `\b`...)
	case '\f':
		return append(b, `\f`...)
	case '\n':
		return append(b, `\n`...)
	case '\r':
		return append(b, `\r`...)
	case '\t':
		return append(b, `\t`...)
	case '\v':
		return append(b, `\v`...)
	}
	switch {
	case r < ' ' || r == 0x7f:
		return append(b, '\\', 'x', hex[r>>4], hex[r&0xf])
	case r <= 0xffff:
		b = append(b, `\u`...)
		return appendHex(b, uint32(r), 4)
	default:
		b = append(b, `\U`...)
		return appendHex(b, uint32(r), 8)
	}
}

func appendHex(b []byte, v uint32, digits int) []byte {
	for s := (digits - 1) * 4; s >= 0; s -= 4 {
		b = append(b, hex[(v>>uint(s))&0xf])
	}
	return b
}

// JSON makes encoded JSON safe for a terminal without changing the value
// it decodes to: encoding/json already escapes C0 controls, but writes DEL,
// C1 controls and bidi overrides raw, so those (every rune String would
// escape) become \uXXXX escapes, which can only stand inside strings. b
// must be valid JSON as encoding/json writes it (valid UTF-8).
func JSON(b []byte) []byte {
	if Safe(string(b)) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			// Not from encoding/json, which replaces invalid UTF-8;
			// U+FFFD says the same thing and is safe.
			out = append(out, `\ufffd`...)
		case unicode.IsPrint(r) || r == '\n' || r == '\t' || r == '\r' || r == ' ':
			// Whitespace outside strings is JSON's own; inside a string
			// encoding/json has escaped it already.
			out = append(out, b[i:i+n]...)
		case r <= 0xffff:
			out = append(out, `\u`...)
			out = appendHex(out, uint32(r), 4)
		default:
			r1, r2 := utf16Pair(r)
			out = append(out, `\u`...)
			out = appendHex(out, uint32(r1), 4)
			out = append(out, `\u`...)
			out = appendHex(out, uint32(r2), 4)
		}
		i += n
	}
	return out
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// Writer escapes what is written through it as String does, except that
// newlines are kept, so multi-line output (a bastion command's answer)
// keeps its lines. Runes split between writes are put together first.
type Writer struct {
	w       io.Writer
	pending []byte
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it; it reports len(p) on success.
func (t *Writer) Write(p []byte) (int, error) {
	buf := append(append(make([]byte, 0, len(t.pending)+len(p)), t.pending...), p...)
	t.pending = t.pending[:0]
	// Hold back an incomplete rune at the end: the next write completes it.
	if cut := incompleteTail(buf); cut > 0 {
		t.pending = append(t.pending, buf[len(buf)-cut:]...)
		buf = buf[:len(buf)-cut]
	}
	out := appendEscaped(make([]byte, 0, len(buf)+16), string(buf), false, true)
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is held back (an unfinished rune) as escaped bytes.
func (t *Writer) Flush() error {
	if len(t.pending) == 0 {
		return nil
	}
	out := appendEscaped(nil, string(t.pending), false, true)
	t.pending = t.pending[:0]
	_, err := t.w.Write(out)
	return err
}

// incompleteTail returns how many bytes at the end of b start a UTF-8
// sequence that more bytes could still complete.
func incompleteTail(b []byte) int {
	for n := 1; n <= utf8.UTFMax-1 && n <= len(b); n++ {
		c := b[len(b)-n]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}
