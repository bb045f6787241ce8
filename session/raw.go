package session

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"
)

// The raw store keeps the bytes of a session that are not (or not only) a
// terminal stream: stdin, stdout and stderr of every session without a pty,
// transfers included. A cast is a readable view; this is the evidence. It
// lives next to the cast as <id>.raw.zst (.raw.ages when encrypted), written
// in segments like the cast (see segment.go).
//
// Format, once decompressed:
//
//	"gatehouse-raw 1\n"
//	record*: kind (1 byte), milliseconds since the start (uvarint),
//	         length (uvarint), that many bytes of data
//
// kind 0, 1 and 2 are data of stdin, stdout and stderr in the order the
// bastion relayed them; kind 3 (no data) marks where the per-session cap
// was reached: nothing after it is stored, the byte counts and SHA-256 of
// every stream go on to the end and are in the session.end audit event.
//
// The writer compresses on a goroutine of its own, which exists only while
// there is something to write, and each of its turns is a segment: a
// session holds a compressor (about a megabyte of tables) only while it
// moves data, and a killed bastion leaves a file that reads up to the last
// segment written.

// Stream is one direction of a session's byte stream.
type Stream byte

// The streams of a session.
const (
	Stdin  Stream = 0
	Stdout Stream = 1
	Stderr Stream = 2

	capKind    = 3
	numStreams = 3
)

var streamNames = [numStreams]string{"stdin", "stdout", "stderr"}

func (s Stream) String() string {
	if int(s) < len(streamNames) {
		return streamNames[s]
	}
	return fmt.Sprintf("stream(%d)", byte(s))
}

// ParseStream reads a stream name: stdin, stdout or stderr.
func ParseStream(name string) (Stream, error) {
	for i, n := range streamNames {
		if n == name {
			return Stream(i), nil
		}
	}
	return 0, fmt.Errorf("unknown stream %q: want stdin, stdout or stderr", name)
}

const (
	rawMagic  = "gatehouse-raw 1\n"
	rawQueued = 256 << 10 // bytes waiting for the writer before Write waits
	// rawMaxRecord bounds one record's length when reading, so a damaged
	// file cannot make a reader allocate without limit.
	rawMaxRecord = 1 << 20
)

// RawOptions tune a RawRecorder.
type RawOptions struct {
	// MaxBytes caps the data bytes stored for the session (all streams
	// together, before compression); 0 or less stores everything. Past
	// the cap, streams are still counted and hashed.
	MaxBytes int64
	// OnCap is called once, on the writer goroutine, when the cap stops
	// the storing; stored is the number of bytes kept.
	OnCap func(stored int64)
	// OnError is called once with the first write error.
	OnError func(error)
	// Now is the clock for record times; default time.Now.
	Now func() time.Time
	// Logger receives the first write error; default slog.Default().
	Logger *slog.Logger
	// Encrypt, when not empty, encrypts the store to these age
	// recipients as it is written.
	Encrypt []age.Recipient
}

// StreamSummary is what is known of one stream at the end, stored or not.
type StreamSummary struct {
	Bytes  int64
	SHA256 string // hex, of every byte of the stream
}

// RawSummary describes a closed raw recording.
type RawSummary struct {
	Streams [numStreams]StreamSummary
	Stored  int64 // data bytes in the file
	Capped  bool  // the cap was reached: the file holds a prefix
}

// RawRecorder writes the raw streams of one session. Write is safe for
// concurrent use; each call costs the caller a copy into a bounded queue.
type RawRecorder struct {
	opts  RawOptions
	id    string
	start time.Time

	mu      sync.Mutex
	room    sync.Cond
	queue   []rawChunk
	data    []byte
	spare   []rawChunk
	spareD  []byte
	running bool
	done    chan struct{}
	closed  bool

	// Owned by the writer goroutine while running, else by Close.
	f      *os.File
	sw     *segmentWriter
	hdr    [1 + 2*binary.MaxVarintLen64]byte
	stored int64
	capped bool
	err    error
	hashes [numStreams]hash.Hash
	counts [numStreams]int64

	closeOnce sync.Once
	sum       RawSummary
	closeErr  error
}

type rawChunk struct {
	stream Stream
	t      time.Duration
	off, n int
}

// NewRawRecorder creates the raw store of session id under dir. It fails
// if the session already has one.
func NewRawRecorder(dir, id string, opts RawOptions) (*RawRecorder, error) {
	path, err := RawPath(dir, id, opts.Encrypt)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("start raw recording %s: %w", id, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start raw recording %s: %w", id, err)
	}
	r := &RawRecorder{opts: opts, id: id, start: opts.Now(), f: f}
	r.room.L = &r.mu
	for i := range r.hashes {
		r.hashes[i] = sha256.New()
	}
	if r.sw, err = newSegmentWriter(f, opts.Encrypt); err == nil {
		err = r.writeMagic()
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("start raw recording %s: %w", id, err)
	}
	return r, nil
}

// Write records p as the next bytes of stream s. It waits while the queue
// is full (a session that outruns its disk slows down; nothing is dropped
// below the cap).
func (r *RawRecorder) Write(s Stream, p []byte) {
	if len(p) == 0 || s >= numStreams {
		return
	}
	r.mu.Lock()
	for len(r.data) > 0 && len(r.data)+len(p) > rawQueued && !r.closed {
		r.room.Wait()
	}
	if r.closed {
		r.mu.Unlock()
		return
	}
	t := r.opts.Now().Sub(r.start)
	if t < 0 {
		t = 0
	}
	r.queue = append(r.queue, rawChunk{stream: s, t: t, off: len(r.data), n: len(p)})
	r.data = append(r.data, p...)
	start := !r.running
	if start {
		r.running = true
		r.done = make(chan struct{})
	}
	r.mu.Unlock()
	if start {
		go r.write()
	}
}

// write is the writer goroutine. Each turn takes what is queued, batch by
// batch, into one zstd frame and ends the frame when the queue is empty;
// the goroutine exits unless something came in meanwhile.
func (r *RawRecorder) write() {
	for {
		if capAt := r.turn(); capAt >= 0 && r.opts.OnCap != nil {
			r.opts.OnCap(capAt)
		}
		r.mu.Lock()
		if len(r.queue) > 0 {
			r.mu.Unlock()
			continue
		}
		if cap(r.spareD) > recorderMinBuf {
			r.spare, r.spareD = nil, nil
		}
		if len(r.data) == 0 && cap(r.data) > recorderMinBuf {
			r.queue, r.data = nil, nil
		}
		r.running = false
		close(r.done)
		r.mu.Unlock()
		return
	}
}

// turn writes everything queued as one segment; it returns the stored
// byte count at which the cap was reached, or -1.
func (r *RawRecorder) turn() int64 {
	capAt := int64(-1)
	for {
		r.mu.Lock()
		batch, data := r.queue, r.data
		r.queue, r.data = r.spare[:0], r.spareD[:0]
		r.spare, r.spareD = nil, nil
		r.mu.Unlock()
		if len(batch) == 0 {
			break
		}
		if c := r.encode(batch, data); c >= 0 {
			capAt = c
		}
		r.mu.Lock()
		r.spare, r.spareD = batch[:0], data[:0]
		r.room.Broadcast()
		r.mu.Unlock()
	}
	if r.err == nil {
		if err := r.sw.End(); err != nil {
			r.fail(err)
		}
	}
	// The file is not written after a failure: the segment is dropped.
	r.sw.drop()
	return capAt
}

// encode hashes and counts a batch and stores what the cap allows. It
// returns the stored byte count at which the cap was reached in this
// batch, or -1.
func (r *RawRecorder) encode(batch []rawChunk, data []byte) int64 {
	capAt := int64(-1)
	for _, c := range batch {
		p := data[c.off : c.off+c.n]
		_, _ = r.hashes[c.stream].Write(p) // a hash does not fail
		r.counts[c.stream] += int64(len(p))
		if r.capped || r.err != nil {
			continue
		}
		keep := p
		if max := r.opts.MaxBytes; max > 0 && r.stored+int64(len(p)) > max {
			keep = p[:max-r.stored]
		}
		if len(keep) > 0 {
			r.record(byte(c.stream), c.t, keep)
			r.stored += int64(len(keep))
		}
		if len(keep) < len(p) {
			r.record(capKind, c.t, nil)
			r.capped = true
			capAt = r.stored
		}
	}
	return capAt
}

func (r *RawRecorder) record(kind byte, t time.Duration, p []byte) {
	if r.err != nil {
		return
	}
	h := r.hdr[:0]
	h = append(h, kind)
	h = binary.AppendUvarint(h, uint64(t/time.Millisecond))
	h = binary.AppendUvarint(h, uint64(len(p)))
	if _, err := r.sw.Write(h); err != nil {
		r.fail(err)
		return
	}
	if _, err := r.sw.Write(p); err != nil {
		r.fail(err)
	}
}

// writeMagic writes the first segment: the magic alone, so that even an
// empty session's file says what it is.
func (r *RawRecorder) writeMagic() error {
	if _, err := r.sw.Write([]byte(rawMagic)); err != nil {
		return err
	}
	return r.sw.End()
}

// fail keeps the first write error and reports it; later data is counted
// and hashed but not written after a gap.
func (r *RawRecorder) fail(err error) {
	if r.err != nil {
		return
	}
	r.err = fmt.Errorf("write raw recording %s: %w", r.id, err)
	r.opts.Logger.Error("raw session recording failed", "session", r.id, "err", r.err)
	if r.opts.OnError != nil {
		r.opts.OnError(r.err)
	}
}

// Close writes what is queued, syncs and closes the file, and returns the
// summary of every stream. Further calls return the same.
func (r *RawRecorder) Close() (RawSummary, error) {
	r.closeOnce.Do(func() { r.sum, r.closeErr = r.close() })
	return r.sum, r.closeErr
}

func (r *RawRecorder) close() (RawSummary, error) {
	r.mu.Lock()
	r.closed = true
	r.room.Broadcast()
	running, done := r.running, r.done
	r.mu.Unlock()
	if running {
		<-done
	}
	// No writer runs now, and none will start.
	var s RawSummary
	for i := range r.hashes {
		s.Streams[i] = StreamSummary{Bytes: r.counts[i], SHA256: hex.EncodeToString(r.hashes[i].Sum(nil))}
	}
	s.Stored, s.Capped = r.stored, r.capped
	err := r.err
	if err == nil {
		err = r.f.Sync()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, r.err) {
		err = fmt.Errorf("close raw recording %s: %w", r.id, err)
	}
	syncDir(filepath.Dir(r.f.Name()))
	return s, err
}

// RawRecord is one record of a raw store.
type RawRecord struct {
	Stream Stream
	Time   time.Duration
	Data   []byte // valid until the next call to Next
	Capped bool   // the cap was reached here; Data is empty
}

// RawReader reads a raw store.
type RawReader struct {
	br  *bufio.Reader
	buf []byte
}

// ErrNoRawRecording is returned by OpenRaw when a session has no raw
// store. It also matches fs.ErrNotExist.
var ErrNoRawRecording = fmt.Errorf("no raw recording: %w", fs.ErrNotExist)

// OpenRaw opens the raw store of session id; an encrypted one needs ids.
func OpenRaw(dir, id string, ids ...age.Identity) (*RawReader, io.Closer, error) {
	return OpenRawFS(os.DirFS(dir), id, ids...)
}

// OpenRawFS is OpenRaw on the recordings in fsys.
func OpenRawFS(fsys fs.FS, id string, ids ...age.Identity) (*RawReader, io.Closer, error) {
	rc, err := openStored(fsys, id, []string{rawSealedExt, rawExt, legacyRawGzExt}, ids)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("open raw recording %s: %w", id, ErrNoRawRecording)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open raw recording %s: %w", id, err)
	}
	rr, err := newRawReader(rc)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("open raw recording %s: %w", id, err)
	}
	return rr, rc, nil
}

// NewRawReader reads the stored raw store in r; an encrypted one needs
// ids. Closing r is the caller's.
func NewRawReader(r io.Reader, ids ...age.Identity) (*RawReader, error) {
	d, err := Decode(r, ids...)
	if err != nil {
		return nil, fmt.Errorf("read raw recording: %w", err)
	}
	return newRawReader(d)
}

// newRawReader reads the decoded raw store in r.
func newRawReader(r io.Reader) (*RawReader, error) {
	rr := &RawReader{br: bufio.NewReaderSize(r, 64<<10)}
	magic := make([]byte, len(rawMagic))
	if _, err := io.ReadFull(rr.br, magic); errors.Is(err, ErrWrongIdentity) {
		return nil, err
	}
	if !bytes.Equal(magic, []byte(rawMagic)) {
		return nil, errors.New("read raw recording: not a gatehouse raw recording")
	}
	return rr, nil
}

// Next returns the next record. At the end it returns io.EOF, or
// ErrTruncated when the file stops inside a record or a zstd frame (a
// bastion killed while writing): everything before is good.
func (rr *RawReader) Next() (RawRecord, error) {
	kind, err := rr.br.ReadByte()
	if errors.Is(err, io.EOF) {
		return RawRecord{}, io.EOF
	}
	if err != nil {
		return RawRecord{}, rr.cut(err)
	}
	if kind > capKind {
		return RawRecord{}, fmt.Errorf("read raw recording: unknown record kind %d", kind)
	}
	ms, err := binary.ReadUvarint(rr.br)
	if err != nil {
		return RawRecord{}, rr.cut(err)
	}
	n, err := binary.ReadUvarint(rr.br)
	if err != nil {
		return RawRecord{}, rr.cut(err)
	}
	if n > rawMaxRecord || (kind == capKind && n != 0) {
		return RawRecord{}, fmt.Errorf("read raw recording: bad record length %d", n)
	}
	if cap(rr.buf) < int(n) {
		rr.buf = make([]byte, n)
	}
	rr.buf = rr.buf[:n]
	if _, err := io.ReadFull(rr.br, rr.buf); err != nil {
		return RawRecord{}, rr.cut(err)
	}
	t := time.Duration(min(ms, uint64(1<<62)/uint64(time.Millisecond))) * time.Millisecond
	if kind == capKind {
		return RawRecord{Time: t, Capped: true}, nil
	}
	return RawRecord{Stream: Stream(kind), Time: t, Data: rr.buf}, nil
}

// cut turns the end of a file killed mid-write into ErrTruncated.
func (rr *RawReader) cut(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrTruncated) {
		return ErrTruncated
	}
	return fmt.Errorf("read raw recording: %w", err)
}

// ExportStream copies the stored bytes of one stream to w. capped reports
// that the cap cut the store short (the rest is only counted and hashed);
// truncated that the file ends early (a killed bastion).
func ExportStream(w io.Writer, rr *RawReader, s Stream) (capped, truncated bool, err error) {
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return capped, false, nil
		}
		if errors.Is(err, ErrTruncated) {
			return capped, true, nil
		}
		if err != nil {
			return capped, false, err
		}
		if rec.Capped {
			capped = true
			continue
		}
		if rec.Stream == s {
			if _, err := w.Write(rec.Data); err != nil {
				return capped, false, fmt.Errorf("export %s: %w", s, err)
			}
		}
	}
}
