package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sanitizer makes recorded output safe for a viewer's terminal, keeping
// state across calls so sequences split between events survive intact.
// The zero value is ready to use.
type Sanitizer struct {
	f escFilter
}

// Append appends the safe form of p to dst. An escape sequence still open
// at the end of p is held back until a later call completes it.
func (s *Sanitizer) Append(dst, p []byte) []byte {
	s.f.mode = modeSanitize
	return s.f.append(dst, p)
}

// Sanitize returns b with everything removed that could attack the
// terminal it is written to. Kept: text, tab/newline/backspace-style
// controls, SGR colours, cursor movement and positioning, erase, insert,
// delete and scroll, scroll regions, cursor visibility and the alternate
// screen, charset selection. Dropped: every OSC (clipboard OSC 52, titles,
// hyperlinks, colour queries), DCS (DECRQSS, tmux passthrough), SOS/PM/APC,
// device status and attribute queries (CSI 6n, CSI c, CSI >c), window ops
// (CSI t), mode reports, mouse/focus/paste reporting modes, ENQ, C1
// controls, and any sequence not known to only draw. Invalid UTF-8 becomes
// U+FFFD and an unfinished trailing sequence is dropped.
func Sanitize(b []byte) []byte {
	s := Sanitizer{}
	out := s.Append(make([]byte, 0, len(b)), b)
	return s.f.end(out)
}

// keepEsc decides two- and three-byte escape sequences (seq starts with ESC).
func keepEsc(seq []byte) bool {
	switch len(seq) {
	case 2:
		switch seq[1] {
		case '7', '8', // save/restore cursor
			'=', '>', // keypad modes
			'D', 'E', 'H', 'M': // index, next line, tab set, reverse index
			return true
		}
		// Dropped among others: ESC Z (DECID, the terminal answers), ESC c
		// (full reset of the viewer's terminal), ESC \ (a stray ST).
		return false
	case 3:
		// Charset designation (ESC ( 0 for line drawing and back).
		switch seq[1] {
		case '(', ')', '*', '+':
			return true
		}
	}
	return false
}

// decPrivateModeKept reports the DEC private modes (CSI ? Pm h/l) a replay may
// switch: they change how the screen is drawn, never make the terminal
// report anything.
func decPrivateModeKept(n int) bool {
	switch n {
	case 1, // application cursor keys
		6,                    // origin mode
		7,                    // autowrap
		12,                   // cursor blink
		25,                   // cursor visible
		47, 1047, 1048, 1049, // alternate screen, save cursor
		2026: // synchronized output
		return true
	}
	// Dropped among others: mouse (9, 1000-1006, 1015, 1016), focus (1004)
	// and bracketed paste (2004) reporting, which would make the viewer's
	// terminal send input; 3 (DECCOLM) which resizes the window.
	return false
}

// maxParam caps numeric parameters of kept sequences so a replay cannot
// ask the terminal to repeat a character a billion times.
const maxParam = 9999

// keepCSI decides a complete CSI sequence (seq starts with ESC [).
func keepCSI(seq []byte) bool {
	body, final := seq[2:len(seq)-1], seq[len(seq)-1]
	var marker byte
	if len(body) > 0 && body[0] >= 0x3c && body[0] <= 0x3f {
		marker, body = body[0], body[1:]
	}
	// Split parameters from intermediates; anything out of order is a
	// malformed sequence that terminals ignore and we drop.
	n := 0
	for n < len(body) && body[n] >= 0x30 && body[n] <= 0x3b {
		n++
	}
	params, inter := body[:n], body[n:]
	for _, b := range inter {
		if b < 0x20 || b > 0x2f {
			return false
		}
	}
	var vals [16]int
	nvals, colon, ok := parseParams(params, vals[:])
	if !ok {
		return false
	}
	if colon && final != 'm' { // sub-parameters only mean something in SGR
		return false
	}
	switch {
	case marker == 0 && len(inter) == 0:
		switch final {
		case 'm', // SGR
			'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'f', 'd', 'e', 'a', '`', 'I', 'Z', // cursor
			'J', 'K', 'X', '@', 'L', 'M', 'P', 'S', // erase, insert, delete, scroll up
			'g', 'b', 's', 'u': // tab clear, repeat, save/restore cursor
			return true
		case 'T': // scroll down; with more parameters it starts mouse tracking
			return nvals <= 1
		case 'r': // scroll region
			return nvals <= 2
		case 'h', 'l': // ANSI modes: only insert mode
			for _, v := range vals[:nvals] {
				if v != 4 {
					return false
				}
			}
			return nvals > 0
		}
	case marker == '?' && len(inter) == 0:
		switch final {
		case 'J', 'K': // selective erase
			return true
		case 'h', 'l':
			for _, v := range vals[:nvals] {
				if !decPrivateModeKept(v) {
					return false
				}
			}
			return nvals > 0
		}
	case marker == 0 && len(inter) == 1 && inter[0] == ' ' && final == 'q': // cursor style
		return true
	}
	// Dropped among others: n (DSR, incl. 6n), c (DA1/2/3), t (window ops
	// and reports), x (DECREQTPARM), $p (DECRQM), ?u (keyboard query),
	// >q (XTVERSION), !p (soft reset), >m/>n (key modifier options).
	return false
}

// parseParams reads decimal parameters separated by ';' or ':' into vals.
// It fails on too many parameters or values above maxParam.
func parseParams(p []byte, vals []int) (n int, colon, ok bool) {
	if len(p) == 0 {
		return 0, false, true
	}
	cur := 0
	for _, b := range p {
		switch {
		case b >= '0' && b <= '9':
			cur = cur*10 + int(b-'0')
			if cur > maxParam {
				return 0, false, false
			}
		case b == ';' || b == ':':
			if b == ':' {
				colon = true
			}
			if n == len(vals)-1 {
				return 0, false, false
			}
			vals[n] = cur
			n++
			cur = 0
		default: // a stray private-marker byte after the first position
			return 0, false, false
		}
	}
	vals[n] = cur
	return n + 1, colon, true
}

// Clock is the time source of Play; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// PlayOptions tune Play.
type PlayOptions struct {
	Speed     float64       // playback speed factor; <= 0 means 1
	IdleLimit time.Duration // longest pause between events; 0 uses the header's idle_time_limit, or no cap
	Clock     Clock         // nil means the real clock
}

// Keys understood by Play when a keys reader is given.
const (
	KeyPause = ' '  // pause / resume
	KeyQuit  = 'q'  // stop playing
	KeyCtrlC = 0x03 // in raw mode Ctrl-C arrives as a byte
	KeyStep  = '.'  // while paused: show the next event
)

// Play replays the recording in r to w in real time, scaled by Speed, with
// idle gaps capped at IdleLimit. Output is passed through a Sanitizer. When
// keys is not nil, bytes read from it control playback (see KeyPause and
// friends); the caller puts the terminal in raw mode and should make keys
// return once Play has returned, since a blocked Read cannot be interrupted.
// Play returns nil at the end or on quit, ctx's error when ctx ends, and an
// error wrapping ErrTruncated after playing a recording cut off by a crash.
func Play(ctx context.Context, r io.Reader, w io.Writer, keys io.Reader, opts PlayOptions) error {
	rd, err := NewReader(r)
	if err != nil {
		return fmt.Errorf("play recording: %w", err)
	}
	clock := opts.Clock
	if clock == nil {
		clock = realClock{}
	}
	speed := opts.Speed
	if !(speed > 0) {
		speed = 1
	}
	idle := opts.IdleLimit
	if idle == 0 && rd.Header().IdleTimeLimit > 0 {
		idle = time.Duration(rd.Header().IdleTimeLimit * float64(time.Second))
	}

	keyCh := make(chan byte, 16)
	done := make(chan struct{})
	defer close(done)
	if keys != nil {
		go readKeys(keys, keyCh, done)
	}

	p := player{clock: clock, base: clock.Now()}
	var (
		san     Sanitizer
		out     []byte
		prev    time.Duration // recording time of the previous event
		virtual time.Duration // playback time of the current event
	)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("play recording: %w", err)
		}
		gap := ev.Time - prev
		prev = ev.Time
		if idle > 0 && gap > idle {
			gap = idle
		}
		virtual += time.Duration(float64(gap) / speed)

		quit, err := p.waitUntil(ctx, virtual, keyCh)
		if err != nil || quit {
			return err
		}
		if ev.Type != EventOutput {
			continue // a replay cannot resize the viewer's terminal; input is not shown
		}
		out = san.Append(out[:0], []byte(ev.Data))
		if len(out) == 0 {
			continue
		}
		if _, err := w.Write(out); err != nil {
			return fmt.Errorf("play recording: write to terminal: %w", err)
		}
	}
}

// player tracks playback time against the clock. The event at playback
// time v is due at base+v; pausing shifts base, so timing never drifts
// however long writes or pauses take.
type player struct {
	clock     Clock
	base      time.Time
	paused    bool
	pausedPos time.Duration // playback position when paused
}

// waitUntil blocks until playback time v is due, handling keys. It returns
// quit=true when the viewer asked to stop.
func (p *player) waitUntil(ctx context.Context, v time.Duration, keyCh <-chan byte) (quit bool, err error) {
	for {
		if p.paused {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case k := <-keyCh:
				switch k {
				case KeyQuit, KeyCtrlC:
					return true, nil
				case KeyPause:
					p.paused = false
					p.base = p.clock.Now().Add(-p.pausedPos)
				case KeyStep:
					p.pausedPos = v
					return false, nil
				}
			}
			continue
		}
		d := p.base.Add(v).Sub(p.clock.Now())
		if d <= 0 {
			// Even at full speed a quit key must be seen between events.
			select {
			case k := <-keyCh:
				if p.key(k, v) {
					return true, nil
				}
				continue
			default:
				return false, nil
			}
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-p.clock.After(d):
		case k := <-keyCh:
			if p.key(k, v) {
				return true, nil
			}
		}
	}
}

// key handles a key while playing; it reports whether to quit.
func (p *player) key(k byte, v time.Duration) bool {
	switch k {
	case KeyQuit, KeyCtrlC:
		return true
	case KeyPause:
		p.paused = true
		p.pausedPos = min(p.clock.Now().Sub(p.base), v)
	}
	return false
}

func readKeys(keys io.Reader, ch chan<- byte, done <-chan struct{}) {
	buf := make([]byte, 64)
	for {
		n, err := keys.Read(buf)
		for _, b := range buf[:n] {
			select {
			case ch <- b:
			case <-done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Export writes the recording in r (plain or gzip) to w as plain
// asciicast v2, re-encoding each line after validating it, so what it
// writes is always well-formed. It stops at the first invalid line and
// returns why; a recording cut off by a crash is exported up to the cut
// and the returned error wraps ErrTruncated.
func Export(w io.Writer, r io.Reader) error {
	rd, err := NewReader(r)
	if err != nil {
		return fmt.Errorf("export recording: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	line, err := appendHeader(nil, rd.Header())
	if err != nil {
		return fmt.Errorf("export recording: %w", err)
	}
	if _, err := bw.Write(line); err != nil {
		return fmt.Errorf("export recording: write: %w", err)
	}
	var readErr error
	for {
		ev, err := rd.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		line = appendEvent(line[:0], ev)
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("export recording: write: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export recording: write: %w", err)
	}
	if readErr != nil {
		return fmt.Errorf("export recording: %w", readErr)
	}
	return nil
}
