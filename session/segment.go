package session

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Recordings are written compressed as they are written, as a series of
// segments: a segment is one complete zstd frame, so a file cut anywhere
// reads up to its last complete segment, and a writer ends a segment
// whenever what it holds must be on disk (the cast's flush interval, the
// end of a raw store's turn). A plain file is just those frames back to
// back, which is a valid zstd stream (`zstd -dc` reads it).
//
// With recipients, each segment is encrypted on its own as an age file and
// the file is:
//
//	"gatehouse-ages 1\n"
//	segment*: length (4 bytes, big endian), then an age file of that length
//	          whose plaintext is one zstd frame
//
// One age file per segment rather than one for the whole recording: age
// authenticates a file's last chunk, and its writer cannot put a partial
// chunk on disk, so a single age stream would hold up to 64 KiB of the
// recording in memory, and lose it in a crash. Each segment costs an X25519
// key agreement per recipient and about 200 bytes; a length prefix is
// needed because age rejects data after the end of its file.
const (
	agesMagic = "gatehouse-ages 1\n"
	// maxSegment ends an encrypted segment once its ciphertext passes it:
	// the segment is built in memory (its length goes first), so this
	// bounds that memory however long a burst of output lasts.
	maxSegment = 1 << 20
	// maxReadSegment is the largest segment a reader accepts, so a damaged
	// length cannot make it allocate without limit.
	maxReadSegment = 16 << 20
	zstdMagic      = "\x28\xb5\x2f\xfd"
	gzipMagic      = "\x1f\x8b"
)

var (
	// ErrEncrypted is returned when reading an encrypted recording without
	// an identity (an age private key) of one of its recipients.
	ErrEncrypted = errors.New("recording is encrypted (recording.encrypt_to): pass --identity FILE with an age identity of one of its recipients")
	// ErrWrongIdentity is returned when no identity given opens a
	// segment of an encrypted recording.
	ErrWrongIdentity = errors.New("none of the identities given can decrypt this recording")
)

// segmentWriters pools what an open segment needs: a zstd encoder (about a
// megabyte of tables) and the buffers behind it. A recording holds one
// only while a segment is open, so a thousand idle shells hold none. The
// pool is invisible to callers: every field is reset before reuse.
var segmentWriters = sync.Pool{New: func() any {
	// Fastest level: a fraction of gzip's CPU per byte; data that does
	// not compress (most binary output) passes almost for free. No frame
	// checksum: it is a large share of the recorder's CPU, and proves nothing
	// against tampering (whoever changes the file recomputes it); age
	// authenticates encrypted recordings, and the raw streams' SHA-256
	// are in the audit log.
	zw, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(false))
	return &segmentState{zw: zw, bw: bufio.NewWriterSize(io.Discard, 64<<10)}
}}

type segmentState struct {
	zw *zstd.Encoder
	bw *bufio.Writer  // plain: the zstd frame on its way to the file
	ct bytes.Buffer   // encrypted: length prefix and age file of the segment
	aw io.WriteCloser // encrypted: the age writer into ct
}

// segmentWriter writes one recording file as segments. It is not safe
// for concurrent use: its owner (a recorder's writer) serialises calls.
type segmentWriter struct {
	w  io.Writer
	to []age.Recipient
	s  *segmentState // the open segment, or nil
}

// newSegmentWriter starts a recording file on w: with recipients, the
// magic of the encrypted form is written now.
func newSegmentWriter(w io.Writer, to []age.Recipient) (*segmentWriter, error) {
	sw := &segmentWriter{w: w, to: to}
	if len(to) > 0 {
		if _, err := io.WriteString(w, agesMagic); err != nil {
			return nil, err
		}
	}
	return sw, nil
}

// open reports whether a segment holds data not yet on disk.
func (sw *segmentWriter) open() bool { return sw.s != nil }

// Write adds p to the open segment, opening one if none is. An encrypted
// segment that has grown past maxSegment is ended here.
func (sw *segmentWriter) Write(p []byte) (int, error) {
	if sw.s == nil {
		if err := sw.begin(); err != nil {
			return 0, err
		}
	}
	n, err := sw.s.zw.Write(p)
	if err != nil {
		sw.drop()
		return n, err
	}
	if sw.s.aw != nil && sw.s.ct.Len() >= maxSegment {
		return n, sw.End()
	}
	return n, nil
}

func (sw *segmentWriter) begin() error {
	s := segmentWriters.Get().(*segmentState)
	if len(sw.to) == 0 {
		s.bw.Reset(sw.w)
		s.zw.Reset(s.bw)
		sw.s = s
		return nil
	}
	s.ct.Reset()
	s.ct.Write([]byte{0, 0, 0, 0}) // the length, filled in by End
	aw, err := age.Encrypt(&s.ct, sw.to...)
	if err != nil {
		segmentWriters.Put(s)
		return fmt.Errorf("encrypt recording: %w", err)
	}
	s.aw = aw
	s.zw.Reset(aw)
	sw.s = s
	return nil
}

// End finishes the open segment and writes it out; without one it does
// nothing. The encrypted segment goes out in one write call, so a crash
// leaves it whole or cut, never interleaved.
func (sw *segmentWriter) End() error {
	s := sw.s
	if s == nil {
		return nil
	}
	err := s.zw.Close()
	if s.aw == nil {
		if err == nil {
			err = s.bw.Flush()
		}
	} else {
		if err == nil {
			err = s.aw.Close()
		}
		if err == nil {
			b := s.ct.Bytes()
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			_, err = sw.w.Write(b)
		}
	}
	sw.drop()
	return err
}

// drop returns the segment's state to the pool without a reference to
// the file or its data.
func (sw *segmentWriter) drop() {
	s := sw.s
	if s == nil {
		return
	}
	sw.s = nil
	s.zw.Reset(io.Discard)
	s.bw.Reset(io.Discard)
	s.aw = nil
	if s.ct.Cap() > 2*maxSegment {
		s.ct = bytes.Buffer{}
	}
	s.ct.Reset()
	segmentWriters.Put(s)
}

// Decode returns the plain content of a stored recording file (a cast or
// a raw store) read from r, whatever its form: encrypted segments (which
// need one of ids), zstd, gzip (recordings of earlier versions) or plain.
// A file cut short by a crash reads up to the cut and then fails with an
// error wrapping ErrTruncated. Close releases the decoder, not r.
func Decode(r io.Reader, ids ...age.Identity) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(len(agesMagic))
	switch {
	case bytes.HasPrefix(head, []byte(agesMagic)):
		if len(ids) == 0 {
			return nil, ErrEncrypted
		}
		br.Discard(len(agesMagic))
		return newZstdReader(&segmentReader{r: br, ids: ids})
	case bytes.HasPrefix(head, []byte(zstdMagic)):
		return newZstdReader(br)
	case bytes.HasPrefix(head, []byte(gzipMagic)):
		zr, err := newGzipReader(br)
		if err != nil {
			return nil, err
		}
		return zr, nil
	}
	return io.NopCloser(br), nil
}

// zstdReader reads a series of zstd frames and reports a frame cut short
// as ErrTruncated.
type zstdReader struct {
	zr *zstd.Decoder
}

func newZstdReader(r io.Reader) (io.ReadCloser, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("read recording: %w", err)
	}
	return zstdReader{zr}, nil
}

func (z zstdReader) Read(p []byte) (int, error) {
	n, err := z.zr.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrTruncated) {
			err = ErrTruncated
		} else if !errors.Is(err, ErrWrongIdentity) {
			err = fmt.Errorf("read recording: %w", err)
		}
	}
	return n, err
}

func (z zstdReader) Close() error {
	z.zr.Close()
	return nil
}

// segmentReader yields the plaintext of encrypted segments one after the
// other: the zstd frames of the recording.
type segmentReader struct {
	r   io.Reader
	ids []age.Identity
	cur io.Reader
	ct  []byte
	err error
}

func (s *segmentReader) Read(p []byte) (int, error) {
	for {
		if s.err != nil {
			return 0, s.err
		}
		if s.cur != nil {
			n, err := s.cur.Read(p)
			if errors.Is(err, io.EOF) {
				s.cur, err = nil, nil
			}
			if err != nil {
				s.err = fmt.Errorf("decrypt recording: %w", err)
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		s.cur, s.err = s.next()
	}
}

// next reads and opens the next segment.
func (s *segmentReader) next() (io.Reader, error) {
	var l [4]byte
	if _, err := io.ReadFull(s.r, l[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, s.cut(err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > maxReadSegment {
		return nil, fmt.Errorf("%w: encrypted segment of %d bytes", ErrFormat, n)
	}
	if cap(s.ct) < int(n) {
		s.ct = make([]byte, n)
	}
	s.ct = s.ct[:n]
	if _, err := io.ReadFull(s.r, s.ct); err != nil {
		return nil, s.cut(err)
	}
	pr, err := age.Decrypt(bytes.NewReader(s.ct), s.ids...)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, ErrWrongIdentity
		}
		return nil, fmt.Errorf("decrypt recording: %w", err)
	}
	return pr, nil
}

func (s *segmentReader) cut(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return fmt.Errorf("read recording: %w", err)
}
