package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// runeCarry holds the first bytes of a UTF-8 sequence that a write split
// from its end, so the next write can complete it.
type runeCarry struct {
	b [utf8.UTFMax]byte
	n int
}

// resume completes the carried rune with the start of p. It returns the
// encoding to emit (the rune, or U+FFFD when p does not continue it), how
// many bytes of p that used, and ok=false when p ended first (p is then
// absorbed into the carry). The returned slice is valid until the next call.
func (c *runeCarry) resume(p []byte) (enc []byte, used int, ok bool) {
	for !utf8.FullRune(c.b[:c.n]) {
		if used == len(p) {
			return nil, used, false
		}
		c.b[c.n] = p[used]
		c.n++
		used++
	}
	r, size := utf8.DecodeRune(c.b[:c.n])
	carried := c.n - used
	c.n = 0
	if r == utf8.RuneError && size == 1 {
		// The carried bytes were a valid prefix that p did not continue:
		// replace each of them, as if p had come in the same write (the
		// recording must not depend on where the network cut the
		// stream), and let p be read from its start again.
		return []byte(strings.Repeat(replacement, carried)), 0, true
	}
	return c.b[:size], used, true
}

// keep stores p's incomplete trailing rune and returns the rest of p.
func (c *runeCarry) keep(p []byte) []byte {
	cut := incompleteTail(p)
	c.n = copy(c.b[:], p[cut:])
	return p[:cut]
}

const replacement = "\uFFFD"

// incompleteTail returns where a rune cut off by the end of p starts, or
// len(p) when p ends on a rune boundary (or in bytes that can never become
// valid, which are replaced rather than carried).
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-(utf8.UTFMax-1); i-- {
		b := p[i]
		if b < utf8.RuneSelf {
			return len(p)
		}
		if utf8.RuneStart(b) {
			if !utf8.FullRune(p[i:]) {
				return i
			}
			return len(p)
		}
	}
	return len(p)
}

// filterMode says what escFilter does with control sequences.
type filterMode uint8

const (
	modeStrip    filterMode = iota // drop every sequence; for search
	modeSanitize                   // keep sequences that only draw; for replay
)

type escState uint8

const (
	stGround   escState = iota
	stEsc               // after ESC
	stEscInter          // ESC followed by intermediate bytes
	stCSI               // ESC [
	stString            // OSC, DCS, SOS, PM, APC body: dropped up to BEL or ST
)

// maxSeq bounds how much of one escape sequence is buffered; longer ones
// are consumed and dropped, since no sequence we keep is that long.
const maxSeq = 64

// escFilter is a streaming parser of terminal output (after the DEC/ECMA-48
// state machine, simplified) that separates text from control sequences.
// It keeps state across calls so sequences and runes split between
// recording events are handled as the terminal would see them.
//
// Safety argument for modeSanitize: an escape byte is only ever emitted at
// the start of a complete sequence that passed the whitelist, C1 controls
// are never emitted, and incomplete sequences are never emitted. So the
// viewer's terminal only ever parses text, whitelisted C0 controls and
// whitelisted complete sequences, whatever the recording contains.
type escFilter struct {
	mode     filterMode
	state    escState
	seq      [maxSeq]byte
	nseq     int
	overlong bool
	carry    runeCarry
	cr       bool // strip mode: a \r was just turned into \n
}

// append filters p and appends the result to dst.
func (f *escFilter) append(dst, p []byte) []byte {
	if f.carry.n > 0 {
		enc, used, ok := f.carry.resume(p)
		if !ok {
			return dst
		}
		dst = f.emitRune(dst, enc)
		p = p[used:]
	}
	for i := 0; i < len(p); {
		b := p[i]
		switch f.state {
		case stGround:
			switch {
			case b >= 0x20 && b < 0x7f:
				j := i + 1
				for j < len(p) && p[j] >= 0x20 && p[j] < 0x7f {
					j++
				}
				dst = append(dst, p[i:j]...)
				f.cr = false
				i = j
				continue
			case b == 0x1b:
				f.begin(stEsc, b)
			case b < 0x20 || b == 0x7f:
				dst = f.control(dst, b)
			default:
				if !utf8.FullRune(p[i:]) {
					f.carry.n = copy(f.carry.b[:], p[i:])
					return dst
				}
				_, size := utf8.DecodeRune(p[i:])
				dst = f.emitRune(dst, p[i:i+size])
				i += size
				continue
			}
		case stEsc:
			switch {
			case b == '[':
				f.push(b)
				f.state = stCSI
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				f.state = stString
			case b >= 0x20 && b <= 0x2f:
				f.push(b)
				f.state = stEscInter
			case b >= 0x30 && b <= 0x7e:
				f.push(b)
				dst = f.finish(dst, keepEsc)
			default:
				if f.interrupt(b) {
					continue // reread b in the ground state
				}
			}
		case stEscInter:
			switch {
			case b >= 0x20 && b <= 0x2f:
				f.push(b)
			case b >= 0x30 && b <= 0x7e:
				f.push(b)
				dst = f.finish(dst, keepEsc)
			default:
				if f.interrupt(b) {
					continue
				}
			}
		case stCSI:
			switch {
			case b >= 0x20 && b <= 0x3f:
				f.push(b)
			case b >= 0x40 && b <= 0x7e:
				f.push(b)
				dst = f.finish(dst, keepCSI)
			default:
				if f.interrupt(b) {
					continue
				}
			}
		case stString:
			switch b {
			case 0x07, 0x18, 0x1a: // BEL ends an OSC in xterm; CAN and SUB abort
				f.state = stGround
			case 0x1b: // ST is ESC \; any ESC ends the string
				f.begin(stEsc, b)
			}
		}
		i++
	}
	return dst
}

// end finishes a one-shot filter: an incomplete sequence is dropped and a
// cut rune becomes U+FFFD.
func (f *escFilter) end(dst []byte) []byte {
	if f.carry.n > 0 {
		f.carry.n = 0
		dst = f.emitRune(dst, []byte(replacement))
	}
	f.state = stGround
	return dst
}

func (f *escFilter) begin(st escState, b byte) {
	f.state = st
	f.nseq = 0
	f.overlong = false
	f.push(b)
}

func (f *escFilter) push(b byte) {
	if f.nseq == len(f.seq) {
		f.overlong = true
		return
	}
	f.seq[f.nseq] = b
	f.nseq++
}

// interrupt handles a byte that cannot continue the current escape
// sequence. It reports whether the byte must be read again as ground text.
func (f *escFilter) interrupt(b byte) bool {
	switch b {
	case 0x1b: // ESC restarts
		f.begin(stEsc, b)
		return false
	case 0x7f: // DEL is ignored inside sequences
		return false
	case 0x18, 0x1a: // CAN, SUB cancel
		f.state = stGround
		return false
	}
	// Other C0 controls (which a terminal would execute mid-sequence) and
	// non-ASCII bytes cancel the sequence here. Cancelling is the safe
	// direction: the terminal never saw the sequence's start.
	f.state = stGround
	return true
}

func (f *escFilter) finish(dst []byte, keep func([]byte) bool) []byte {
	f.state = stGround
	if f.mode == modeSanitize && !f.overlong && keep(f.seq[:f.nseq]) {
		dst = append(dst, f.seq[:f.nseq]...)
	}
	return dst
}

func (f *escFilter) emitRune(dst, enc []byte) []byte {
	r, _ := utf8.DecodeRune(enc)
	if r >= 0x80 && r <= 0x9f {
		// C1 controls: U+009B is CSI and U+009D is OSC to terminals that
		// honour 8-bit controls, so they are never text.
		return dst
	}
	f.cr = false
	if r == utf8.RuneError && len(enc) == 1 {
		return append(dst, replacement...)
	}
	return append(dst, enc...)
}

func (f *escFilter) control(dst []byte, b byte) []byte {
	if f.mode == modeStrip {
		switch b {
		case '\r':
			// A carriage return starts the line over; for search that is a
			// line break (progress bars, "\r\n" line ends).
			f.cr = true
			return append(dst, '\n')
		case '\n':
			if f.cr {
				f.cr = false
				return dst
			}
			return append(dst, '\n')
		case '\t':
			f.cr = false
			return append(dst, '\t')
		}
		return dst
	}
	switch b {
	case '\b', '\t', '\n', '\v', '\f', '\r', 0x0e, 0x0f: // SO/SI select line-drawing charsets
		return append(dst, b)
	}
	// Dropped: NUL, ENQ (makes the terminal send its answerback), BEL,
	// DEL and the rest.
	return dst
}

// StripANSI returns the text of terminal output b: escape sequences
// (CSI, OSC, DCS and the rest) are removed, text, tabs and newlines are
// kept, and a carriage return becomes a newline ("\r\n" one newline), so a
// redrawn line reads as separate lines. Invalid UTF-8 becomes U+FFFD.
func StripANSI(b []byte) []byte {
	f := escFilter{mode: modeStrip}
	out := f.append(make([]byte, 0, len(b)), b)
	return f.end(out)
}

// Grep reports whether the output or the recorded input of the recording
// in r contains text, ignoring case and escape sequences and matching
// across event boundaries (each direction on its own). A recording cut off
// by a crash is searched up to the cut.
func Grep(r io.Reader, text string) (bool, error) {
	rd, err := NewReader(r)
	if err != nil {
		return false, err
	}
	needle := bytes.ToLower([]byte(text))
	if len(needle) == 0 {
		return true, nil
	}
	// Output and input are separate texts: a match must not be made of
	// the end of one and the start of the other.
	out, in := grepStream{f: escFilter{mode: modeStrip}}, grepStream{f: escFilter{mode: modeStrip}}
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, ErrTruncated) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("search recording: %w", err)
		}
		g := &out
		switch ev.Type {
		case EventOutput:
		case EventInput:
			g = &in
		default:
			continue
		}
		if g.next([]byte(ev.Data), needle) {
			return true, nil
		}
	}
}

// grepStream is the search state of one direction: window holds the tail
// of the lowered text so far that a match could still start in, followed
// by the current event's text.
type grepStream struct {
	f             escFilter
	window, chunk []byte
}

func (g *grepStream) next(data, needle []byte) bool {
	g.chunk = g.f.append(g.chunk[:0], data)
	g.window = append(g.window, bytes.ToLower(g.chunk)...)
	if bytes.Contains(g.window, needle) {
		return true
	}
	if keep := len(needle) - 1; len(g.window) > keep {
		g.window = append(g.window[:0], g.window[len(g.window)-keep:]...)
	}
	return false
}
