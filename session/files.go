package session

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
)

// File name suffixes: a recording is live (being written, or left by a
// crash) or final (closed and compressed).
const (
	liveExt  = ".cast"
	finalExt = ".cast.gz"
)

var (
	// ErrInvalidID is returned for a session id that could not safely name a
	// file.
	ErrInvalidID = errors.New("invalid session id")
	// ErrNoRecording is returned by Open when a session has no recording.
	// It also matches fs.ErrNotExist.
	ErrNoRecording = fmt.Errorf("no recording: %w", fs.ErrNotExist)
)

// ValidID checks that id can name a recording: 8 to 64 characters of
// lowercase letters, digits and '-', starting with a letter or digit. The
// id reaches us from CLI arguments and URLs, so anything that could walk
// out of the recordings directory ("../x", "a/b", "") is refused here
// rather than trusted to filepath.Join.
func ValidID(id string) error {
	if len(id) < 8 || len(id) > 64 {
		return fmt.Errorf("%w: length %d, want 8 to 64", ErrInvalidID, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return fmt.Errorf("%w: want lowercase letters, digits and '-'", ErrInvalidID)
		}
	}
	return nil
}

// base returns dir/<shard>/<id> without suffix. The shard is taken from a
// hash of the id, not its prefix, because ids may start with a timestamp
// and would then pile into one directory.
func base(dir, id string) (string, error) {
	if err := ValidID(id); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(dir, hex.EncodeToString(sum[:1]), id), nil
}

// LivePath is where the recording of session id is written while live.
func LivePath(dir, id string) (string, error) {
	b, err := base(dir, id)
	if err != nil {
		return "", err
	}
	return b + liveExt, nil
}

// FinalPath is where the recording of session id is kept once closed.
func FinalPath(dir, id string) (string, error) {
	b, err := base(dir, id)
	if err != nil {
		return "", err
	}
	return b + finalExt, nil
}

// gzipFile closes both the gzip stream and the file under it.
type gzipFile struct {
	*gzip.Reader
	f io.Closer
}

func (g gzipFile) Close() error {
	return errors.Join(g.Reader.Close(), g.f.Close())
}

// Open returns the plain asciicast v2 stream of session id's recording,
// compressed or live (a live file reads as far as it has been flushed).
func Open(dir, id string) (io.ReadCloser, error) {
	return OpenFS(os.DirFS(dir), id)
}

// OpenFS is Open on the recordings in fsys, which is laid out like a
// recordings directory (a bucket, for one).
func OpenFS(fsys fs.FS, id string) (io.ReadCloser, error) {
	b, err := Name(id)
	if err != nil {
		return nil, err
	}
	// Final first: during Close both files exist for a moment, and the
	// final one is then complete. Trying it again after the live one
	// covers a Close that finished between the two looks.
	for _, name := range []string{b + finalExt, b + liveExt, b + finalExt} {
		f, err := fsys.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open recording %s: %w", id, err)
		}
		if path.Ext(name) != ".gz" {
			return f, nil
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open recording %s: %w", id, err)
		}
		return gzipFile{Reader: zr, f: f}, nil
	}
	return nil, fmt.Errorf("open recording %s: %w", id, ErrNoRecording)
}

// Finalize compresses a live recording left behind by a crash (or by a
// failed compression in Recorder.Close) and removes the plain file. It is
// a no-op when the recording is already final or does not exist.
func Finalize(dir, id string) error {
	b, err := base(dir, id)
	if err != nil {
		return err
	}
	return compress(b+liveExt, b+finalExt)
}

// compressor is a gzip writer and the buffer that feeds it.
type compressor struct {
	zw  *gzip.Writer
	buf []byte
}

// compressors keeps compressors for reuse. Each flate compressor holds
// about a megabyte of tables, allocated and cleared by gzip.NewWriter: at
// tens of sessions a second that was most of the bastion's allocation and
// garbage collection, for recordings of a few hundred bytes. A pool is
// invisible to callers (Reset makes a writer as good as new), which is why
// it is the one package-level variable here.
var compressors = sync.Pool{New: func() any {
	// BestSpeed: compression runs after every session, competing with live
	// ones; it is 3-5x faster than the default for ~10% larger files.
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	// 64 KiB: a small recording in one read, and what flate takes per
	// block for large ones.
	return &compressor{zw: zw, buf: make([]byte, 64<<10)}
}}

// compress writes live to final as gzip and removes live. The gzip file is
// written under a temporary name, synced and renamed, so final is either
// absent or complete: a crash midway leaves live intact for the next try.
func compress(live, final string) error {
	in, err := os.Open(live)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("compress recording: %w", err)
	}
	defer in.Close()
	if _, err := os.Stat(final); err == nil {
		// A crash between rename and remove: the final file is complete.
		if err := os.Remove(live); err != nil {
			return fmt.Errorf("compress recording: remove %s: %w", live, err)
		}
		return nil
	}
	tmp := final + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compress recording: %w", err)
	}
	c := compressors.Get().(*compressor)
	c.zw.Reset(out)
	err = c.copy(in)
	if err == nil {
		err = c.zw.Close()
	}
	// Reset drops the reference to out; a writer that failed midway is
	// reset as well, so nothing of this file goes back into the pool.
	c.zw.Reset(io.Discard)
	compressors.Put(c)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compress recording %s: %w", live, err)
	}
	syncDir(filepath.Dir(final))
	if err := os.Remove(live); err != nil {
		return fmt.Errorf("compress recording: remove %s: %w", live, err)
	}
	return nil
}

// copy feeds in to the gzip writer through the pooled buffer; io.Copy
// would allocate 32 KiB per recording, as neither side offers a ReadFrom or
// WriteTo that avoids it.
func (c *compressor) copy(in *os.File) error {
	for {
		n, err := in.Read(c.buf)
		if n > 0 {
			if _, werr := c.zw.Write(c.buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// syncDir makes a rename durable. Failure is ignored: some filesystems do
// not support syncing directories, and the data itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
