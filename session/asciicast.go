package session

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types of asciicast v2.
const (
	EventOutput = "o" // bytes the session wrote to the terminal
	EventInput  = "i" // bytes typed by the user (only with record_input)
	EventResize = "r" // terminal resized; data is "COLSxROWS"
	EventMarker = "m" // a named point in the recording
)

// Limits that keep a hostile or corrupt file from exhausting memory or
// producing values that overflow later arithmetic.
const (
	maxLine       = 8 << 20 // bytes per JSON line
	maxDimension  = 10000   // columns or rows
	maxEventSecs  = 1e9     // ~31 years: beyond this a time is corrupt, and time.Duration would overflow near 292 years
	formatVersion = 2
)

var (
	// ErrFormat marks input that is not a valid asciicast v2 recording.
	ErrFormat = errors.New("not a valid asciicast v2 recording")
	// ErrTruncated marks a recording whose last line was cut off, as left by
	// a bastion that died mid-write. Every event before it was delivered.
	ErrTruncated = errors.New("recording truncated")
)

// Header is the first line of an asciicast v2 file.
type Header struct {
	Version       int               `json:"version"`
	Width         int               `json:"width"`
	Height        int               `json:"height"`
	Timestamp     int64             `json:"timestamp,omitempty"` // Unix seconds at the start
	Duration      float64           `json:"duration,omitempty"`
	IdleTimeLimit float64           `json:"idle_time_limit,omitempty"`
	Command       string            `json:"command,omitempty"`
	Title         string            `json:"title,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
}

// Event is one line after the header.
type Event struct {
	Time time.Duration // since the recording started
	Type string        // EventOutput, EventInput, EventResize or EventMarker
	Data string
}

// Size returns the terminal size of a resize event.
func (e Event) Size() (cols, rows int, ok bool) {
	if e.Type != EventResize {
		return 0, 0, false
	}
	return parseSize(e.Data)
}

func parseSize(s string) (cols, rows int, ok bool) {
	c, r, found := strings.Cut(s, "x")
	if !found {
		return 0, 0, false
	}
	cols, ok1 := parseDimension(c)
	rows, ok2 := parseDimension(r)
	return cols, rows, ok1 && ok2
}

// parseDimension accepts only plain decimal digits; strconv.Atoi alone would
// also take "+80" or "-0".
func parseDimension(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n >= 1 && n <= maxDimension
}

// Reader reads an asciicast v2 recording event by event. It accepts the
// plain form and every stored form Decode reads without a key.
type Reader struct {
	sc     *bufio.Scanner
	header Header
	last   time.Duration
	line   int
	err    error // sticky: once set, Next returns it forever
}

// NewReader reads and validates the header of the recording in r.
func NewReader(r io.Reader) (*Reader, error) {
	// Accepting every stored form (except encrypted, which needs a key:
	// see Open) means no caller has to care which form it was handed.
	d, err := Decode(r)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(d)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	sc.Split(scanLines)
	rd := &Reader{sc: sc}
	line, complete, err := rd.scan()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read recording header: empty input: %w", ErrFormat)
		}
		return nil, fmt.Errorf("read recording header: %w", err)
	}
	h, err := parseHeader(line)
	if err != nil {
		if !complete && len(line) > 0 && line[0] == '{' {
			return nil, fmt.Errorf("read recording header: %w", ErrTruncated)
		}
		return nil, err
	}
	rd.header = h
	return rd, nil
}

// Header returns the recording's header.
func (rd *Reader) Header() Header { return rd.header }

// Next returns the next event, io.EOF at the end, or an error wrapping
// ErrFormat or ErrTruncated. Errors are sticky.
func (rd *Reader) Next() (Event, error) {
	if rd.err != nil {
		return Event{}, rd.err
	}
	line, complete, err := rd.scan()
	if err != nil {
		rd.err = err
		if !errors.Is(err, io.EOF) {
			rd.err = fmt.Errorf("read recording line %d: %w", rd.line+1, err)
		}
		return Event{}, rd.err
	}
	ev, err := parseEvent(line)
	if err == nil && ev.Time < rd.last {
		err = fmt.Errorf("%w: event time %v before previous %v", ErrFormat, ev.Time, rd.last)
	}
	if err != nil {
		// An unterminated last line that does not parse is what a killed
		// writer leaves behind; callers treat that differently from a
		// corrupt file.
		if !complete && len(line) > 0 && line[0] == '[' {
			err = ErrTruncated
		}
		rd.err = fmt.Errorf("read recording line %d: %w", rd.line, err)
		return Event{}, rd.err
	}
	rd.last = ev.Time
	return ev, nil
}

// scan returns the next line and whether it ended with a newline.
func (rd *Reader) scan() (line []byte, complete bool, err error) {
	if !rd.sc.Scan() {
		if err := rd.sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return nil, false, fmt.Errorf("%w: line longer than %d bytes", ErrFormat, maxLine)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrTruncated) {
				// compressed stream cut short: same situation as a cut plain file.
				return nil, false, ErrTruncated
			}
			return nil, false, err
		}
		return nil, false, io.EOF
	}
	rd.line++
	b := rd.sc.Bytes()
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return b[:len(b)-1], true, nil
	}
	return b, false, nil
}

// scanLines is bufio.ScanLines but keeps the newline, so the reader can tell
// a complete last line from a cut one.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// All iterates over the remaining events. A failure is yielded once as the
// last pair; the end of the recording is not an error.
func (rd *Reader) All() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			ev, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(Event{}, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Parse reads the header of the recording in r and returns it with an
// iterator over its events.
func Parse(r io.Reader) (Header, iter.Seq2[Event, error], error) {
	rd, err := NewReader(r)
	if err != nil {
		return Header{}, nil, err
	}
	return rd.Header(), rd.All(), nil
}

func parseHeader(line []byte) (Header, error) {
	var h Header
	if len(line) == 0 || line[0] != '{' {
		return Header{}, fmt.Errorf("%w: header is not a JSON object", ErrFormat)
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	switch {
	case h.Version != formatVersion:
		return Header{}, fmt.Errorf("%w: version %d, want 2", ErrFormat, h.Version)
	case h.Width < 1 || h.Width > maxDimension || h.Height < 1 || h.Height > maxDimension:
		return Header{}, fmt.Errorf("%w: terminal size %dx%d", ErrFormat, h.Width, h.Height)
	case h.Timestamp < 0:
		return Header{}, fmt.Errorf("%w: negative timestamp", ErrFormat)
	case !validSeconds(h.Duration) || !validSeconds(h.IdleTimeLimit):
		return Header{}, fmt.Errorf("%w: duration or idle_time_limit out of range", ErrFormat)
	}
	return h, nil
}

func validSeconds(f float64) bool {
	return f >= 0 && f <= maxEventSecs && !math.IsNaN(f)
}

func parseEvent(line []byte) (Event, error) {
	if len(line) == 0 || line[0] != '[' {
		return Event{}, fmt.Errorf("%w: event is not a JSON array", ErrFormat)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return Event{}, fmt.Errorf("%w: event: %v", ErrFormat, err)
	}
	if len(parts) != 3 {
		return Event{}, fmt.Errorf("%w: event has %d fields, want 3", ErrFormat, len(parts))
	}
	var secs float64
	if err := json.Unmarshal(parts[0], &secs); err != nil {
		return Event{}, fmt.Errorf("%w: event time: %v", ErrFormat, err)
	}
	if !validSeconds(secs) {
		return Event{}, fmt.Errorf("%w: event time %v out of range", ErrFormat, secs)
	}
	var ev Event
	ev.Time = time.Duration(math.Round(secs * 1e9))
	if err := json.Unmarshal(parts[1], &ev.Type); err != nil {
		return Event{}, fmt.Errorf("%w: event type: %v", ErrFormat, err)
	}
	if err := json.Unmarshal(parts[2], &ev.Data); err != nil {
		return Event{}, fmt.Errorf("%w: event data: %v", ErrFormat, err)
	}
	switch ev.Type {
	case EventOutput, EventInput, EventMarker:
	case EventResize:
		if _, _, ok := parseSize(ev.Data); !ok {
			return Event{}, fmt.Errorf("%w: resize data %q, want COLSxROWS", ErrFormat, ev.Data)
		}
	default:
		return Event{}, fmt.Errorf("%w: unknown event type %q", ErrFormat, ev.Type)
	}
	return ev, nil
}

// appendHeader appends h as one JSON line.
func appendHeader(dst []byte, h Header) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // titles and commands stay readable in the file
	if err := enc.Encode(h); err != nil {
		return dst, fmt.Errorf("encode recording header: %w", err)
	}
	return append(dst, buf.Bytes()...), nil // Encode ends with "\n"
}

// appendEventHead appends `[secs, "t", "` : everything before the data.
func appendEventHead(dst []byte, t time.Duration, typ byte) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendFloat(dst, t.Seconds(), 'f', 6, 64)
	return append(dst, ',', ' ', '"', typ, '"', ',', ' ', '"')
}

// appendEvent appends one complete event line.
func appendEvent(dst []byte, ev Event) []byte {
	typ := byte('o')
	if len(ev.Type) == 1 {
		typ = ev.Type[0]
	}
	dst = appendEventHead(dst, ev.Time, typ)
	dst = appendJSONText(dst, []byte(ev.Data))
	return append(dst, '"', ']', '\n')
}

const hexDigits = "0123456789abcdef"

// special8 marks the bytes of the eight in w (little endian) that JSON
// cannot take as they are: >= 0x80 (UTF-8 to check), < 0x20, '"' or '\\'.
// The result has bit 7 of a byte set for each such byte, using the classic
// "has a byte less than n" bit trick. Its lowest set bit is always exact
// (a borrow only spreads upwards from a byte that matched), which is all
// the caller uses: it finds the first byte that needs attention.
func special8(w uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ctl := (w - 0x20*lo) & ^w & hi
	q := w ^ ('"' * lo)
	quote := (q - lo) & ^q & hi
	bs := w ^ ('\\' * lo)
	backslash := (bs - lo) & ^bs & hi
	return w&hi | ctl | quote | backslash
}

// jsonClass classifies every byte value for appendJSONText, indexed by the
// byte (a constant string is a lookup table that cannot be modified):
//
//	'0' ASCII that goes into a JSON string as is
//	'1' ASCII that JSON needs escaped: controls, '"' and '\\'
//	'2' a byte that may start a multibyte UTF-8 sequence (0xC2-0xF4)
//	'3' a byte that is never valid where a rune starts
const jsonClass = "" +
	"1111111111111111" + // 0x00
	"1111111111111111" + // 0x10
	"0010000000000000" + // 0x20 '"'
	"0000000000000000" + // 0x30
	"0000000000000000" + // 0x40
	"0000000000001000" + // 0x50 '\\'
	"0000000000000000" + // 0x60
	"0000000000000000" + // 0x70 (DEL needs no escape in JSON)
	"3333333333333333" + // 0x80 continuation bytes
	"3333333333333333" + // 0x90
	"3333333333333333" + // 0xa0
	"3333333333333333" + // 0xb0
	"3322222222222222" + // 0xc0 (0xC0, 0xC1 only start overlong forms)
	"2222222222222222" + // 0xd0
	"2222222222222222" + // 0xe0
	"2222233333333333" //   0xf0 (above 0xF4 is beyond U+10FFFF)

// appendJSONText appends p as the inside of a JSON string. Invalid UTF-8
// becomes U+FFFD so every recorded event is valid UTF-8 and valid JSON.
// This is the recorder's hot path. Text that needs nothing (the common
// case) costs a scan of sixteen bytes per step and one append of the whole
// run; where a byte needs attention, its position comes from the scan's
// mask rather than from looking at the bytes before it one by one, and
// nothing is allocated when dst has room.
func appendJSONText(dst, p []byte) []byte { return appendJSONTextCRLF(dst, p, false, false) }

// appendJSONTextCRLF is appendJSONText that, with crlf set, writes each
// '\n' not preceded by '\r' as "\r\n": what a terminal with ONLCR showed
// for output of a session without a pty. prevCR tells whether the byte
// before p was '\r'. The conversion costs nothing extra: '\n' is escaped
// anyway.
func appendJSONTextCRLF(dst, p []byte, crlf, prevCR bool) []byte {
	start := 0
	for i := 0; i < len(p); {
		b := p[i]
		switch jsonClass[b] {
		case '0':
			// Skip what needs no change, sixteen bytes, then eight, at
			// a time, to the first byte that needs attention.
			i++
			for i+16 <= len(p) && special8(binary.LittleEndian.Uint64(p[i:]))|special8(binary.LittleEndian.Uint64(p[i+8:])) == 0 {
				i += 16
			}
			if i+8 <= len(p) {
				if m := special8(binary.LittleEndian.Uint64(p[i:])); m != 0 {
					i += bits.TrailingZeros64(m) >> 3
				} else {
					i += 8
				}
			}
		case '1':
			dst = append(dst, p[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				if crlf && !(i > 0 && p[i-1] == '\r' || i == 0 && prevCR) {
					dst = append(dst, '\\', 'r')
				}
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
		case '2':
			r, size := utf8.DecodeRune(p[i:])
			if r != utf8.RuneError || size > 1 {
				i += size // valid: stays part of the run
				continue
			}
			dst = append(dst, p[start:i]...)
			dst = append(dst, replacement...)
			i++
			start = i
		default:
			dst = append(dst, p[start:i]...)
			dst = append(dst, replacement...)
			i++
			start = i
		}
	}
	return append(dst, p[start:]...)
}
