package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/session/sftp"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// A session channel's bytes pass through stages on their way across the
// relay. Each stage is an io.Writer with one job and its own state; the
// relay hands every chunk of a stream (stdin, stdout, stderr) to that
// stream's writer before relaying it, and composeStreams decides, once a
// session has started, which stages each stream goes through. A stage
// never fails the relay: a recording that cannot be written reports it
// through its own error callback, and Write always returns len(p), nil.
// A stage must not keep p after Write returns.

// writerFunc adapts a function to a stage.
type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// tee hands each chunk to every stage in order. Unlike io.MultiWriter it
// does not stop at a failing one.
type tee []io.Writer

func (t tee) Write(p []byte) (int, error) {
	for _, w := range t {
		_, _ = w.Write(p)
	}
	return len(p), nil
}

// discard is a stage that keeps nothing.
var discard io.Writer = writerFunc(func([]byte) {})

// byteCounter counts a session's bytes: to the node (stdin) and from it
// (stdout and stderr together), as the session index and session.end
// report them.
type byteCounter struct{ in, out atomic.Int64 }

func (c *byteCounter) stdin() io.Writer {
	return writerFunc(func(p []byte) { c.in.Add(int64(len(p))) })
}
func (c *byteCounter) output() io.Writer {
	return writerFunc(func(p []byte) { c.out.Add(int64(len(p))) })
}

// binaryDetector passes a stream on as text until a chunk holds a NUL
// byte, which terminal output and typed text do not contain; from that
// chunk on the stream is binary: onTurn runs once, before the chunk, and
// every byte goes to the binaryStream (counted and hashed) instead of
// text when counting is on, or nowhere. Whether a stream has a detector at
// all is decided from protocol facts (see composeStreams): only a session
// without a pty that is not a recognised transfer has one, and every byte
// of such a session is in the raw store whichever way it turns, so a user
// who prints a NUL to get out of the recording gets into the raw store.
//
// Only the goroutine relaying its stream writes to a detector; its state
// is read once that goroutine is done.
type binaryDetector struct {
	text   io.Writer
	onTurn func()
	count  bool
	turned bool
	bin    *binaryStream // set at the turn when counting
}

func (d *binaryDetector) Write(p []byte) (int, error) {
	if !d.turned {
		if bytes.IndexByte(p, 0) < 0 {
			return d.text.Write(p)
		}
		d.turned = true
		if d.count {
			d.bin = newBinaryStream()
		}
		// A full recording queue may make onTurn wait; nothing else
		// waits on the detector.
		d.onTurn()
	}
	if d.bin != nil {
		d.bin.write(p)
	}
	return len(p), nil
}

// binary is the counted binary part of the stream, nil while it is text.
func (d *binaryDetector) binary() *binaryStream {
	if d == nil {
		return nil
	}
	return d.bin
}

// binaryStream is binary stdout kept out of the recording. It is hashed
// on a goroutine of its own: SHA-256 on the relay goroutine was the
// largest single cost of a download.
type binaryStream struct {
	hash  hash.Hash
	q     *queuedWriter // into hash
	bytes int64
}

func newBinaryStream() *binaryStream {
	h := sha256.New()
	q := newQueuedWriter(h)
	q.startAt = queueMax * 3 / 4 // nobody waits for the hash until the session ends
	return &binaryStream{hash: h, q: q}
}

func (b *binaryStream) write(p []byte) {
	_, _ = b.q.Write(p) // a hash does not fail
	b.bytes += int64(len(p))
}

// sum is the SHA-256 of every byte written, once the queue has drained.
func (b *binaryStream) sum() string {
	_ = b.q.Flush()
	return hex.EncodeToString(b.hash.Sum(nil))
}

// castStage writes a session's terminal recording (asciicast). It holds
// the recorder from the session's start until close; writes after close
// (the relay may still be draining) are dropped. The recorder copies each
// chunk and encodes it on a goroutine of its own, and applies ONLCR itself
// for a session without a pty.
type castStage struct {
	rec atomic.Pointer[recorderRef]
}

type recorderRef struct{ Recorder }

func newCastStage(r Recorder) *castStage {
	c := &castStage{}
	if r != nil {
		c.rec.Store(&recorderRef{r})
	}
	return c
}

func (c *castStage) recorder() Recorder {
	if c == nil {
		return nil
	}
	if r := c.rec.Load(); r != nil {
		return r.Recorder
	}
	return nil
}

func (c *castStage) output() io.Writer {
	return writerFunc(func(p []byte) {
		if r := c.recorder(); r != nil {
			r.Output(p)
		}
	})
}

func (c *castStage) input() io.Writer {
	return writerFunc(func(p []byte) {
		if r := c.recorder(); r != nil {
			r.Input(p)
		}
	})
}

func (c *castStage) marker(label string) {
	if r := c.recorder(); r != nil {
		r.Marker(label)
	}
}

func (c *castStage) resize(cols, rows int) {
	if r := c.recorder(); r != nil {
		r.Resize(cols, rows)
	}
}

// close detaches the recorder and returns it for the caller to close
// (closing drains and syncs, which the caller paces); nil if there was none or
// it was already detached.
func (c *castStage) close() Recorder {
	if c == nil {
		return nil
	}
	if r := c.rec.Swap(nil); r != nil {
		return r.Recorder
	}
	return nil
}

// rawStage keeps every byte of a session without a pty in the raw store,
// each stream on its own. Writes after close are dropped.
type rawStage struct {
	raw atomic.Pointer[rawRef]
}

type rawRef struct{ RawRecorder }

func newRawStage(r RawRecorder) *rawStage {
	s := &rawStage{}
	if r != nil {
		s.raw.Store(&rawRef{r})
	}
	return s
}

func (s *rawStage) stream(st RawStream) io.Writer {
	return writerFunc(func(p []byte) {
		if r := s.raw.Load(); r != nil {
			r.Write(st, p)
		}
	})
}

// close detaches the store and returns it for the caller to close; nil if
// there was none or it was already detached.
func (s *rawStage) close() RawRecorder {
	if s == nil {
		return nil
	}
	if r := s.raw.Swap(nil); r != nil {
		return r.RawRecorder
	}
	return nil
}

// liveStage feeds a session's output to its live watchers (join). Without
// a pty the user's own terminal turned \n into \r\n (ONLCR), so watchers
// get the same conversion; stdout and stderr share it, one chunk at a time.
type liveStage struct {
	watch *broadcaster
	mu    sync.Mutex
	nl    *onlcr // nil with a pty
}

func newLiveStage(watch *broadcaster, pty bool) *liveStage {
	l := &liveStage{watch: watch}
	if !pty {
		l.nl = &onlcr{}
	}
	return l
}

func (l *liveStage) Write(p []byte) (int, error) {
	if l.nl == nil {
		l.watch.write(p)
		return len(p), nil
	}
	l.mu.Lock()
	l.watch.write(l.nl.apply(p))
	l.mu.Unlock()
	return len(p), nil
}

// note shows watchers a line of Gatehouse's own between the output.
func (l *liveStage) note(line string) { l.watch.write([]byte("\r\n[" + line + "]\r\n")) }

// onlcr converts lone \n to \r\n across chunk boundaries. It reuses its
// buffer, so the result is valid until the next call. It runs on the relay
// goroutine for every chunk of a session without a pty, so it copies the
// runs between newlines whole (memmove) instead of byte by byte.
type onlcr struct {
	lastCR bool
	buf    []byte
}

func (o *onlcr) apply(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		if len(p) > 0 {
			o.lastCR = p[len(p)-1] == '\r'
		}
		return p
	}
	o.buf = o.buf[:0]
	for i >= 0 {
		cr := o.lastCR
		if i > 0 {
			cr = p[i-1] == '\r'
		}
		o.buf = append(o.buf, p[:i]...)
		if !cr {
			o.buf = append(o.buf, '\r')
		}
		o.buf = append(o.buf, '\n')
		o.lastCR = false
		p = p[i+1:]
		i = bytes.IndexByte(p, '\n')
	}
	if len(p) > 0 {
		o.buf = append(o.buf, p...)
		o.lastCR = p[len(p)-1] == '\r'
	}
	return o.buf
}

// sftpStage reads the SFTP protocol of an sftp subsystem session both ways
// and audits each file operation with its path. The audit appends run on a
// goroutine of its own, so a slow audit log does not stall the transfer.
type sftpStage struct {
	w      *sftp.Watcher
	events chan storage.Event
	done   chan struct{}
	once   sync.Once
}

// newSFTPStage audits through audit every operation event returns.
func newSFTPStage(event func(sftp.Op) storage.Event, audit func(storage.Event)) *sftpStage {
	s := &sftpStage{events: make(chan storage.Event, 1024), done: make(chan struct{})}
	s.w = sftp.NewWatcher(func(op sftp.Op) { s.events <- event(op) })
	go func() {
		defer close(s.done)
		for ev := range s.events {
			audit(ev)
		}
	}()
	return s
}

func (s *sftpStage) fromClient() io.Writer { return writerFunc(s.w.FromClient) }
func (s *sftpStage) fromServer() io.Writer { return writerFunc(s.w.FromServer) }

// close reports what the watcher still holds (operations never answered)
// and waits until every event is on record. Call it once the relay is done
// with both directions.
func (s *sftpStage) close() {
	if s == nil {
		return
	}
	s.once.Do(func() {
		s.w.Close()
		close(s.events)
		<-s.done
	})
}

// streams is what each stream of a session goes through.
type streams struct {
	stdin, stdout, stderr io.Writer
}

// sessionStages are the stages of one session channel.
type sessionStages struct {
	count  byteCounter
	live   *liveStage
	cast   *castStage
	raw    *rawStage
	sftp   *sftpStage
	binOut *binaryDetector // stdout of a session without a pty that is not a transfer
}

// stageMarkers are the notes a binaryDetector leaves where a stream stops
// being recorded as text.
const (
	// binaryMarker is the "m" event where a recording's text stops: from
	// there on the session's stdout is binary; it is in the raw store, and
	// its byte count and SHA-256 are in the audit log, like a file
	// transfer's.
	binaryMarker = "gatehouse: binary output from here on is not recorded as text (raw bytes: sessions export --stream stdout; bytes and sha256 in the session.end audit event)"
	// binaryInputMarker is the same for stdin of a session without a pty.
	binaryInputMarker = "gatehouse: binary input from here on is not recorded as text (raw bytes: sessions export --stream stdin)"
)

// compose builds each stream's chain for a session of kind, with or
// without a pty, from the stages it has (cast, raw and sftp may be nil).
// The shape:
//
//	stdin:  sftp.fromClient, count, raw.stdin, [binary detector ->] cast.input
//	stdout: sftp.fromServer, count, raw.stdout, [binary detector ->] cast.output, live
//	stderr: count, raw.stderr, cast.output, live
//
// The binary detectors are there only without a pty and, on stdout, only
// for a session that is not a transfer (classify decides from protocol
// facts); stdin's only feeds the recording (the raw store has every byte).
func (st *sessionStages) compose(kind string, pty bool) streams {
	var in, out, errs tee
	if st.sftp != nil {
		in = append(in, st.sftp.fromClient())
		out = append(out, st.sftp.fromServer())
	}
	in = append(in, st.count.stdin())
	out = append(out, st.count.output())
	errs = append(errs, st.count.output())
	if st.raw != nil {
		in = append(in, st.raw.stream(RawStdin))
		out = append(out, st.raw.stream(RawStdout))
		errs = append(errs, st.raw.stream(RawStderr))
	}
	var castOut, castIn io.Writer = discard, discard
	if st.cast != nil {
		castOut, castIn = st.cast.output(), st.cast.input()
	}
	text := tee{castOut, st.live}
	errs = append(errs, text...)
	if pty {
		return streams{stdin: append(in, castIn), stdout: append(out, text...), stderr: errs}
	}
	if st.cast != nil {
		in = append(in, &binaryDetector{text: castIn, onTurn: func() { st.cast.marker(binaryInputMarker) }})
	}
	if isTransfer(kind) {
		return streams{stdin: in, stdout: append(out, text...), stderr: errs}
	}
	st.binOut = &binaryDetector{text: text, count: true, onTurn: func() {
		st.cast.marker(binaryMarker)
		st.live.note(binaryMarker)
	}}
	return streams{stdin: in, stdout: append(out, st.binOut), stderr: errs}
}
