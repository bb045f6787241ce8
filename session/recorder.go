package session

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Buffering of the recorder. Events collect in one buffer that is written
// with a single write call when it passes flushThreshold or when the flush
// timer fires, so the file always ends on an event boundary unless the
// kernel cut a write short, and a killed bastion loses at most the last
// flush interval. Large writes are split into events of at most
// maxEventData bytes so that the buffer never grows past recorderBufSize
// (the worst case of JSON escaping, 6 bytes per input byte); it starts at
// recorderMinBuf and returns there when the session goes quiet.
const (
	defaultFlushInterval = 100 * time.Millisecond
	flushThreshold       = 64 << 10
	maxEventData         = 32 << 10
	maxEventLine         = 6*maxEventData + 64
	recorderBufSize      = flushThreshold + maxEventLine
	// recorderMinBuf is where a buffer starts, and what an idle session's
	// buffer shrinks back to: a thousand quiet shells must not each hold
	// the worst-case recorderBufSize.
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
}

// Recorder writes one session's terminal stream as asciicast v2. Its
// methods are safe for concurrent use: output, input and resizes arrive
// from different goroutines of the proxy.
type Recorder struct {
	opts     RecorderOptions
	id       string
	live     string
	final    string
	start    time.Time
	interval time.Duration

	mu      sync.Mutex
	f       *os.File
	buf     []byte
	last    time.Duration // time of the last event, to keep times monotonic
	out, in runeCarry
	timer   *time.Timer
	armed   bool
	closed  bool
	err     error
	failed  bool // OnError has been (or is being) called

	closeOnce sync.Once
	closeErr  error
}

// NewRecorder starts the recording of session id under dir. h.Version and,
// when zero, h.Timestamp are filled in; a zero size becomes 80x24 since
// asciicast requires one (exec sessions have no terminal). The header is on
// disk when NewRecorder returns. It fails if the session already has a
// recording.
func NewRecorder(dir, id string, h Header, opts RecorderOptions) (*Recorder, error) {
	b, err := base(dir, id)
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

	r := &Recorder{opts: opts, id: id, live: b + liveExt, final: b + finalExt, start: start, interval: interval,
		buf: make([]byte, 0, recorderMinBuf)}
	if _, err := os.Stat(r.final); err == nil {
		return nil, fmt.Errorf("start recording %s: %w", id, fs.ErrExist)
	}
	if err := os.MkdirAll(filepath.Dir(r.live), 0o700); err != nil {
		return nil, fmt.Errorf("start recording %s: %w", id, err)
	}
	// O_EXCL: a second recorder for the same id must not interleave with
	// or truncate the first.
	f, err := os.OpenFile(r.live, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start recording %s: %w", id, err)
	}
	r.f = f
	if r.buf, err = appendHeader(r.buf, h); err == nil {
		_, err = f.Write(r.buf)
	}
	r.buf = r.buf[:0]
	if err != nil {
		f.Close()
		os.Remove(r.live)
		return nil, fmt.Errorf("start recording %s: write header: %w", id, err)
	}
	r.timer = time.AfterFunc(time.Hour, r.onTimer)
	r.timer.Stop()
	return r, nil
}

// Path is the file being written; after Close the recording is at the
// final (compressed) path instead.
func (r *Recorder) Path() string { return r.live }

// Output records bytes the session wrote to the terminal.
func (r *Recorder) Output(p []byte) { r.record('o', &r.out, p) }

// Input records bytes the user typed, when RecordInput is set.
func (r *Recorder) Input(p []byte) {
	if r.opts.RecordInput {
		r.record('i', &r.in, p)
	}
}

// Resize records a terminal size change.
func (r *Recorder) Resize(cols, rows int) {
	if cols <= 0 || rows <= 0 {
		return
	}
	cols, rows = min(cols, maxDimension), min(rows, maxDimension)
	r.mu.Lock()
	if r.closed || r.err != nil {
		r.mu.Unlock()
		return
	}
	r.makeRoom()
	r.buf = appendEventHead(r.buf, r.elapsed(), 'r')
	r.buf = strconv.AppendInt(r.buf, int64(cols), 10)
	r.buf = append(r.buf, 'x')
	r.buf = strconv.AppendInt(r.buf, int64(rows), 10)
	r.buf = append(r.buf, '"', ']', '\n')
	err := r.scheduleLocked()
	r.mu.Unlock()
	r.report(err)
}

// Err returns the first write error, or nil.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// record appends p as events of type typ. A rune cut at the end of p is
// held in c until the next call, so every event is valid UTF-8.
func (r *Recorder) record(typ byte, c *runeCarry, p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	if r.closed || r.err != nil {
		r.mu.Unlock()
		return
	}
	t := r.elapsed()
	for len(p) > 0 {
		chunk := p[:min(len(p), maxEventData)]
		p = p[len(chunk):]
		r.makeRoom()
		r.appendData(typ, t, c, chunk)
	}
	err := r.scheduleLocked()
	r.mu.Unlock()
	r.report(err)
}

// appendData appends one event with chunk (after any carried bytes) as its
// data, or nothing if that leaves no complete rune.
func (r *Recorder) appendData(typ byte, t time.Duration, c *runeCarry, chunk []byte) {
	mark := len(r.buf)
	r.buf = appendEventHead(r.buf, t, typ)
	head := len(r.buf)
	if c.n > 0 {
		enc, used, ok := c.resume(chunk)
		if !ok {
			r.buf = r.buf[:mark]
			return
		}
		r.buf = appendJSONText(r.buf, enc)
		chunk = chunk[used:]
	}
	r.buf = appendJSONText(r.buf, c.keep(chunk))
	if len(r.buf) == head {
		r.buf = r.buf[:mark]
		return
	}
	r.buf = append(r.buf, '"', ']', '\n')
}

func (r *Recorder) elapsed() time.Duration {
	t := r.opts.Now().Sub(r.start)
	if t < r.last {
		t = r.last // a clock that steps back must not break the file's order
	}
	r.last = t
	return t
}

// makeRoom writes the buffer out when one more event might not fit.
func (r *Recorder) makeRoom() {
	if len(r.buf) >= flushThreshold {
		r.writeLocked()
	}
}

// scheduleLocked arms the flush timer for buffered events and returns an
// error that the caller must report after unlocking.
func (r *Recorder) scheduleLocked() error {
	if r.err != nil {
		return r.takeFailure()
	}
	if len(r.buf) > 0 && !r.armed {
		r.armed = true
		r.timer.Reset(r.interval)
	}
	return nil
}

func (r *Recorder) onTimer() {
	r.mu.Lock()
	r.armed = false
	if !r.closed && r.err == nil && len(r.buf) > 0 {
		r.writeLocked()
	}
	var err error
	if r.err != nil {
		err = r.takeFailure()
	}
	r.mu.Unlock()
	r.report(err)
}

// writeLocked writes the buffer to the file. A failed write is sticky:
// later events are dropped rather than written after a gap.
func (r *Recorder) writeLocked() {
	if r.err != nil || len(r.buf) == 0 {
		r.buf = r.buf[:0]
		return
	}
	if _, err := r.f.Write(r.buf); err != nil {
		r.err = fmt.Errorf("write recording %s: %w", r.id, err)
	}
	if cap(r.buf) > 4*recorderMinBuf && len(r.buf) < recorderMinBuf {
		r.buf = make([]byte, 0, recorderMinBuf)
		return
	}
	r.buf = r.buf[:0]
}

// takeFailure returns the first error exactly once, for report.
func (r *Recorder) takeFailure() error {
	if r.failed {
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

// Close writes what is buffered, closes the file and compresses it to its
// final path. It returns the first write error if there was one, else any
// error closing or compressing (the plain file then stays, complete, for
// Finalize). Further calls return the same result.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Recorder) close() error {
	r.mu.Lock()
	r.closed = true
	r.timer.Stop()
	// A rune still cut at the end will never be completed.
	for _, c := range []struct {
		typ   byte
		carry *runeCarry
	}{{'o', &r.out}, {'i', &r.in}} {
		if c.carry.n > 0 {
			c.carry.n = 0
			r.makeRoom()
			r.appendData(c.typ, r.elapsed(), c.carry, []byte(replacement))
		}
	}
	r.writeLocked()
	writeErr := r.err
	failure := r.takeFailure()
	err := r.f.Sync()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.mu.Unlock()
	r.report(failure)
	if err != nil {
		err = fmt.Errorf("close recording %s: %w", r.id, err)
	} else {
		err = compress(r.live, r.final)
	}
	if writeErr != nil {
		return writeErr
	}
	return err
}
