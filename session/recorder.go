package session

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
)

// Buffering of the recorder. The relay hands each chunk to Output, which
// only copies it into the session's queue: encoding JSON and writing the
// file happen on a writer goroutine, so recording costs the relay a memmove
// and the encoding runs beside it on another core. The writer exists only
// while there is work (it exits after a quiet flush interval), so a
// thousand idle shells hold no goroutines and no large buffers.
//
// Encoded events collect in one buffer that is written with a single write
// call when it passes flushThreshold or when the flush interval has passed
// since its first event, so the file always ends on an event boundary
// unless the kernel cut a write short, and a killed bastion loses at most
// the last flush interval. Large chunks are split into events of at most
// maxEventData bytes so that the buffer never grows past recorderBufSize
// (the worst case of JSON escaping, 6 bytes per input byte).
const (
	defaultFlushInterval = 100 * time.Millisecond
	flushThreshold       = 64 << 10
	maxEventData         = 32 << 10
	maxEventLine         = 6*maxEventData + 64
	recorderBufSize      = flushThreshold + maxEventLine
	// maxQueued bounds the bytes waiting for the writer. A producer that
	// finds the queue full waits: a recording is never silently cut, and
	// a session that outruns its disk slows down instead of growing
	// memory without bound.
	maxQueued = 256 << 10
	// recorderMinBuf is the largest buffer an idle recorder keeps: a
	// thousand quiet shells must not each hold the worst case.
	recorderMinBuf = 4 << 10
)

// RecorderOptions tune a Recorder.
type RecorderOptions struct {
	// RecordInput records what the user types ("i" events). Off by
	// default: input contains passwords typed at prompts.
	RecordInput bool
	// OnError is called once, outside the recorder's lock, with the first
	// write error. In strict mode the proxy ends the session from it.
	OnError func(error)
	// FlushInterval bounds how long an event stays in memory; default 100ms.
	FlushInterval time.Duration
	// Logger receives the first write error; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for event times; default time.Now. For tests.
	Now func() time.Time
	// ONLCR records output as a terminal with ONLCR showed it: each lone
	// "\n" as "\r\n". Set it for sessions without a pty, whose output
	// the user's own terminal converted; without it replays staircase.
	ONLCR bool
	// Encrypt, when not empty, encrypts the recording to these age
	// recipients as it is written.
	Encrypt []age.Recipient
}

// Recorder writes one session's terminal stream as asciicast v2. Its
// methods are safe for concurrent use: output, input and resizes arrive
// from different goroutines of the proxy.
type Recorder struct {
	opts     RecorderOptions
	id       string
	path     string
	start    time.Time
	interval time.Duration

	mu      sync.Mutex
	room    sync.Cond // producers wait here while the queue is full
	queue   []queued  // events not yet encoded, in order
	data    []byte    // their payloads, back to back
	spare   []queued  // the writer's last batch, reused
	spareD  []byte
	last    time.Duration // time of the last event, to keep times monotonic
	running bool          // a writer goroutine owns f, buf and the carries
	done    chan struct{} // closed when that writer exits
	wake    chan struct{} // new events for a waiting writer
	closed  bool
	flush   bool // Flush waits for the writer to write everything and exit
	err     error
	failed  bool // OnError has been (or is being) called

	// Owned by the writer goroutine while running is set, else by
	// whoever holds mu.
	f       *os.File
	sw      *segmentWriter
	buf     []byte
	out, in runeCarry
	outCR   bool // the last output byte encoded was '\r' (for ONLCR)

	closeOnce sync.Once
	closeErr  error
}

// queued is one event waiting for the writer: data[off:off+n] of the
// queue's payload, or the size of a resize.
type queued struct {
	typ    byte
	t      time.Duration
	off, n int // for 'r': cols, rows
}

// NewRecorder starts the recording of session id under dir. h.Version and,
// when zero, h.Timestamp are filled in; a zero size becomes 80x24 since
// asciicast requires one (exec sessions have no terminal). The header is on
// disk when NewRecorder returns. It fails if the session already has a
// recording.
func NewRecorder(dir, id string, h Header, opts RecorderOptions) (*Recorder, error) {
	path, err := CastPath(dir, id, opts.Encrypt)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	interval := opts.FlushInterval
	if interval <= 0 {
		interval = defaultFlushInterval
	}
	start := opts.Now()
	h.Version = formatVersion
	if h.Timestamp == 0 {
		h.Timestamp = start.Unix()
	}
	if h.Width <= 0 || h.Height <= 0 {
		h.Width, h.Height = 80, 24
	}
	h.Width, h.Height = min(h.Width, maxDimension), min(h.Height, maxDimension)

	r := &Recorder{opts: opts, id: id, path: path, start: start, interval: interval,
		wake: make(chan struct{}, 1)}
	r.room.L = &r.mu
	if castExists(dir, id) {
		return nil, fmt.Errorf("start recording %s: %w", id, fs.ErrExist)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("start recording %s: %w", id, err)
	}
	// O_EXCL: a second recorder for the same id must not interleave with
	// or truncate the first.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start recording %s: %w", id, err)
	}
	r.f = f
	// The header is a segment of its own: on disk, and readable, now.
	var head []byte
	if head, err = appendHeader(nil, h); err == nil {
		if r.sw, err = newSegmentWriter(f, opts.Encrypt); err == nil {
			if _, err = r.sw.Write(head); err == nil {
				err = r.sw.End()
			}
		}
	}
	if err != nil {
		if r.sw != nil {
			r.sw.drop()
		}
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("start recording %s: write header: %w", id, err)
	}
	return r, nil
}

// Path is the file the recording is written to.
func (r *Recorder) Path() string { return r.path }

// Output records bytes the session wrote to the terminal.
func (r *Recorder) Output(p []byte) { r.enqueue('o', p, 0, 0) }

// Input records bytes the user typed, when RecordInput is set.
func (r *Recorder) Input(p []byte) {
	if r.opts.RecordInput {
		r.enqueue('i', p, 0, 0)
	}
}

// Marker records a named point ("m" event), such as where output stopped
// being recorded as text. Players show it; the terminal stream is unchanged.
func (r *Recorder) Marker(label string) {
	if label != "" {
		r.enqueue('m', []byte(label), 0, 0)
	}
}

// Resize records a terminal size change.
func (r *Recorder) Resize(cols, rows int) {
	if cols <= 0 || rows <= 0 {
		return
	}
	r.enqueue('r', nil, min(cols, maxDimension), min(rows, maxDimension))
}

// Flush writes every event recorded so far to the file (not synced) and
// returns the first write error. Sessions do not need it (events reach the
// file within the flush interval); tests and a reader that must see
// everything do.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	if r.running {
		r.flush = true
		done := r.done
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
		<-done
		r.mu.Lock()
	}
	defer r.mu.Unlock()
	return r.err
}

// Err returns the first write error, or nil.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// QueuedBytes is how much recorded output waits for the writer (metrics:
// a queue that stays near maxQueued means the disk cannot keep up).
func (r *Recorder) QueuedBytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.data)
}

// enqueue copies one event into the queue for the writer, starting the
// writer if none runs. It waits while the queue is full.
func (r *Recorder) enqueue(typ byte, p []byte, cols, rows int) {
	if typ != 'r' && len(p) == 0 {
		return
	}
	r.mu.Lock()
	for len(r.data) > 0 && len(r.data)+len(p) > maxQueued && !r.closed && r.err == nil {
		r.room.Wait()
	}
	if r.closed || r.err != nil {
		r.mu.Unlock()
		return
	}
	q := queued{typ: typ, t: r.elapsed(), off: cols, n: rows}
	if typ != 'r' {
		q.off, q.n = len(r.data), len(p)
		r.data = append(r.data, p...)
	}
	r.queue = append(r.queue, q)
	start := !r.running
	if start {
		r.running = true
		r.done = make(chan struct{})
	}
	r.mu.Unlock()
	if start {
		go r.write()
	} else {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

func (r *Recorder) elapsed() time.Duration {
	t := r.opts.Now().Sub(r.start)
	if t < r.last {
		t = r.last // a clock that steps back must not break the file's order
	}
	r.last = t
	return t
}

// write is the writer goroutine: it encodes queued events and writes the
// buffer when it is full or its oldest event has waited a flush interval,
// and exits once everything is written and nothing new came for one
// interval (or at Close or Flush). It never holds mu while it encodes or
// writes: a slow disk blocks producers only through the bounded queue.
func (r *Recorder) write() {
	var (
		timer *time.Timer
		due   time.Time // when the oldest buffered event must be on disk
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		r.mu.Lock()
		batch, data := r.queue, r.data
		r.queue, r.data = r.spare[:0], r.spareD[:0]
		r.spare, r.spareD = nil, nil
		failed := r.err != nil
		r.mu.Unlock()

		if len(batch) > 0 && !failed {
			if !r.pending() {
				due = time.Now().Add(r.interval)
			}
			r.encode(batch, data)
		}

		r.mu.Lock()
		r.spare, r.spareD = batch[:0], data[:0]
		r.room.Broadcast()
		ending := r.closed || r.flush || r.err != nil
		r.mu.Unlock()
		if r.pending() && (ending || !time.Now().Before(due)) {
			r.writeOut(true)
		} else if len(r.buf) >= flushThreshold {
			r.writeOut(false)
		}

		r.mu.Lock()
		failure := r.takeFailure()
		ending = r.closed || r.flush || r.err != nil
		if len(r.queue) == 0 && ending && (!r.pending() || r.err != nil) {
			// Everything is written (or cannot be): hand the file back
			// and go. Close, or after Flush the next event, takes over.
			r.buf = r.buf[:0]
			r.stopLocked()
			r.mu.Unlock()
			r.report(failure)
			return
		}
		more := len(r.queue) > 0 || ending
		r.mu.Unlock()
		r.report(failure)
		if more {
			continue
		}
		// Wait for more events, or until the buffer is due (or, with an
		// empty buffer, one interval of quiet before exiting).
		wait := r.interval
		if r.pending() {
			wait = max(time.Until(due), 0)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-r.wake:
		case <-timer.C:
			r.mu.Lock()
			if len(r.queue) == 0 && !r.pending() {
				r.stopLocked()
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
		}
	}
}

// pending reports whether recorded events are not yet on disk: in the
// buffer, or in a segment not yet ended. Only the writer (or Close, once
// it is gone) calls it.
func (r *Recorder) pending() bool { return len(r.buf) > 0 || r.sw.open() }

// stopLocked ends the writer's turn; mu is held.
func (r *Recorder) stopLocked() {
	if r.err != nil {
		r.sw.drop()
	}
	r.trimLocked()
	r.running, r.flush = false, false
	close(r.done)
}

// encode appends a batch of queued events to the buffer, writing it out
// whenever one more event might not fit. Only the writer calls it.
func (r *Recorder) encode(batch []queued, data []byte) {
	for _, q := range batch {
		if q.typ == 'r' {
			if !r.makeRoom() {
				return
			}
			r.buf = appendEventHead(r.buf, q.t, 'r')
			r.buf = strconv.AppendInt(r.buf, int64(q.off), 10)
			r.buf = append(r.buf, 'x')
			r.buf = strconv.AppendInt(r.buf, int64(q.n), 10)
			r.buf = append(r.buf, '"', ']', '\n')
			continue
		}
		c := &r.out
		switch q.typ {
		case 'i':
			c = &r.in
		case 'm':
			c = &runeCarry{} // a marker is whole; it never continues a stream
		}
		p := data[q.off : q.off+q.n]
		for len(p) > 0 {
			chunk := p[:min(len(p), maxEventData)]
			p = p[len(chunk):]
			if !r.makeRoom() {
				return
			}
			r.appendData(q.typ, q.t, c, chunk)
		}
	}
}

// makeRoom writes the buffer out when one more event might not fit; false
// means the write failed (published) and the batch is to be dropped.
func (r *Recorder) makeRoom() bool {
	return len(r.buf) < flushThreshold || r.writeOut(false)
}

// writeOut is the writer's write: without the lock (only the writer
// touches buf and f while it runs), a failure published under it. With
// end, the segment is ended too, which puts everything on disk.
func (r *Recorder) writeOut(end bool) bool {
	err := r.writeBuf(end)
	if err == nil {
		return true
	}
	r.mu.Lock()
	r.setErr(err)
	r.mu.Unlock()
	return false
}

// appendData appends one event with chunk (after any carried bytes) as its
// data, or nothing if that leaves no complete rune.
func (r *Recorder) appendData(typ byte, t time.Duration, c *runeCarry, chunk []byte) {
	mark := len(r.buf)
	r.buf = appendEventHead(r.buf, t, typ)
	head := len(r.buf)
	crlf := typ == 'o' && r.opts.ONLCR
	if c.n > 0 {
		enc, used, ok := c.resume(chunk)
		if !ok {
			r.buf = r.buf[:mark]
			return
		}
		r.buf = appendJSONText(r.buf, enc)
		chunk = chunk[used:]
		if crlf {
			r.outCR = false // enc is a multibyte rune or U+FFFD
		}
	}
	text := c.keep(chunk)
	r.buf = appendJSONTextCRLF(r.buf, text, crlf, r.outCR)
	if crlf && len(chunk) > 0 {
		r.outCR = chunk[len(chunk)-1] == '\r'
	}
	if len(r.buf) == head {
		r.buf = r.buf[:mark]
		return
	}
	r.buf = append(r.buf, '"', ']', '\n')
}

// flushLocked writes the buffer; mu is held (Close, once the writer is gone).
func (r *Recorder) flushLocked() {
	if err := r.writeBuf(true); err != nil {
		r.setErr(err)
	}
}

// writeBuf hands the buffer to the compressor and empties it; with end it
// also ends the segment, writing it to the file. After a failure nothing
// more is written: later events are dropped rather than written after a
// gap.
func (r *Recorder) writeBuf(end bool) error {
	var err error
	if r.err == nil && len(r.buf) > 0 {
		_, err = r.sw.Write(r.buf)
	}
	if err == nil && r.err == nil && end {
		err = r.sw.End()
	}
	if err != nil || r.err != nil {
		r.sw.drop()
	}
	r.buf = r.buf[:0]
	if err != nil {
		return fmt.Errorf("write recording %s: %w", r.id, err)
	}
	return nil
}

// setErr records the first write error and drops what is queued; mu is
// held.
func (r *Recorder) setErr(err error) {
	if r.err == nil {
		r.err = err
	}
	r.queue, r.data = r.queue[:0], r.data[:0]
	r.room.Broadcast()
}

// trimLocked lets go of large buffers when the writer stops; mu is held.
func (r *Recorder) trimLocked() {
	if cap(r.buf) > recorderMinBuf {
		r.buf = nil
	}
	if cap(r.spareD) > recorderMinBuf {
		r.spare, r.spareD = nil, nil
	}
	if len(r.data) == 0 && cap(r.data) > recorderMinBuf {
		r.queue, r.data = nil, nil
	}
}

// takeFailure returns the first error exactly once, for report.
func (r *Recorder) takeFailure() error {
	if r.failed || r.err == nil {
		return nil
	}
	r.failed = true
	return r.err
}

func (r *Recorder) report(err error) {
	if err == nil {
		return
	}
	r.opts.Logger.Error("session recording failed", "session", r.id, "err", err)
	if r.opts.OnError != nil {
		r.opts.OnError(err)
	}
}

// Close writes what is buffered, then syncs and closes the file. It
// returns the first write error if there was one, else any error syncing
// or closing. Further calls return the same result.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Recorder) close() error {
	r.mu.Lock()
	r.closed = true
	r.room.Broadcast()
	running, done := r.running, r.done
	r.mu.Unlock()
	if running {
		// The writer drains what was queued before Close, then exits.
		select {
		case r.wake <- struct{}{}:
		default:
		}
		<-done
	}
	r.mu.Lock()
	// No writer runs now: buf, f and the carries are ours. A rune still
	// cut at the end will never be completed.
	for _, c := range []struct {
		typ   byte
		carry *runeCarry
	}{{'o', &r.out}, {'i', &r.in}} {
		if n := c.carry.n; n > 0 && r.err == nil {
			c.carry.n = 0
			if len(r.buf) >= flushThreshold {
				r.flushLocked()
			}
			// One U+FFFD per byte, as if the stream had gone on.
			r.appendData(c.typ, r.elapsed(), c.carry, []byte(strings.Repeat(replacement, n)))
		}
	}
	r.flushLocked()
	writeErr := r.err
	failure := r.takeFailure()
	// One fsync per session, at its end: until then a killed bastion's
	// page cache still holds what was written.
	err := r.f.Sync()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.buf = nil
	r.mu.Unlock()
	r.report(failure)
	if err != nil {
		err = fmt.Errorf("close recording %s: %w", r.id, err)
	}
	syncDir(filepath.Dir(r.path))
	if writeErr != nil {
		return writeErr
	}
	return err
}

// castExists reports whether session id has a cast in any form.
func castExists(dir, id string) bool {
	b, err := base(dir, id)
	if err != nil {
		return false
	}
	for _, ext := range []string{castSealedExt, castExt, legacyGzExt, legacyExt} {
		if _, err := os.Stat(b + ext); err == nil {
			return true
		}
	}
	return false
}
