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
	"path/filepath"

	"filippo.io/age"
)

// File name suffixes. A session's terminal stream is its cast; a session
// without a pty also has a raw store. Both are written compressed (and,
// with recording.encrypt_to, encrypted) as they are written; the legacy
// forms are what earlier versions wrote, still read.
const (
	castExt        = ".cast.zst"
	castSealedExt  = ".cast.ages"
	rawExt         = ".raw.zst"
	rawSealedExt   = ".raw.ages"
	legacyGzExt    = ".cast.gz" // closed casts of earlier versions
	legacyExt      = ".cast"    // live casts of earlier versions, left by a crash
	legacyRawGzExt = ".raw.gz"  // raw stores of earlier versions (gzip members)
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

// Files returns the names, relative to the recordings directory, that
// the files of session id's recording may have: its cast, then its raw
// store, each in every form a reader accepts, the forms written today
// first. It is the one place that knows how recordings are named, for
// whatever stores or copies them.
func Files(id string) ([]string, error) {
	b, err := base("", id)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ext := range []string{castSealedExt, castExt, legacyGzExt, legacyExt, rawSealedExt, rawExt, legacyRawGzExt} {
		out = append(out, b+ext)
	}
	return out, nil
}

// CastPath is where a new cast of session id is written: encrypted when
// there are recipients.
func CastPath(dir, id string, to []age.Recipient) (string, error) {
	return newPath(dir, id, castExt, castSealedExt, to)
}

// RawPath is where a new raw store of session id is written.
func RawPath(dir, id string, to []age.Recipient) (string, error) {
	return newPath(dir, id, rawExt, rawSealedExt, to)
}

func newPath(dir, id, plain, sealed string, to []age.Recipient) (string, error) {
	b, err := base(dir, id)
	if err != nil {
		return "", err
	}
	if len(to) > 0 {
		return b + sealed, nil
	}
	return b + plain, nil
}

// readCloser closes the decoder and the file under it.
type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// openStored opens the first of <shard>/id+exts in fsys that exists and
// decodes it.
func openStored(fsys fs.FS, id string, exts []string, ids []age.Identity) (io.ReadCloser, error) {
	b, err := Name(id)
	if err != nil {
		return nil, err
	}
	for _, ext := range exts {
		f, err := fsys.Open(b + ext)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d, err := Decode(f, ids...)
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{d, func() error { return errors.Join(d.Close(), f.Close()) }}, nil
	}
	return nil, fs.ErrNotExist
}

// Open returns the plain asciicast v2 stream of session id's recording,
// in whichever form it is stored; an encrypted one needs ids (else the
// error wraps ErrEncrypted). A recording still being written reads as far
// as it has been flushed, then fails with ErrTruncated.
func Open(dir, id string, ids ...age.Identity) (io.ReadCloser, error) {
	return OpenFS(os.DirFS(dir), id, ids...)
}

// OpenFS is Open on the recordings in fsys, which is laid out like a
// recordings directory (a bucket, for one).
func OpenFS(fsys fs.FS, id string, ids ...age.Identity) (io.ReadCloser, error) {
	// The legacy live file is tried before and after its compressed form:
	// Finalize may convert it between the two looks.
	rc, err := openStored(fsys, id, []string{castSealedExt, castExt, legacyGzExt, legacyExt, castExt}, ids)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open recording %s: %w", id, ErrNoRecording)
	}
	if err != nil {
		return nil, fmt.Errorf("open recording %s: %w", id, err)
	}
	return rc, nil
}

// Encrypted reports whether session id's cast is stored encrypted.
func Encrypted(dir, id string) bool {
	return EncryptedFS(os.DirFS(dir), id)
}

// EncryptedFS is Encrypted on the recordings in fsys.
func EncryptedFS(fsys fs.FS, id string) bool {
	b, err := Name(id)
	if err != nil {
		return false
	}
	_, err = fs.Stat(fsys, b+castSealedExt)
	return err == nil
}

// newGzipReader reads recordings of earlier versions.
func newGzipReader(r io.Reader) (io.ReadCloser, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("open gzip recording: %w", err)
	}
	return zr, nil
}

// Finalize converts a plain cast left behind by a crash of an earlier
// version into today's form (encrypted to the recipients given, if any)
// and removes the plain file. It is a no-op when there is no such file.
// The new file is written under a temporary name, synced and renamed, so
// a crash midway leaves the plain file for the next try.
func Finalize(dir, id string, to ...age.Recipient) error {
	b, err := base(dir, id)
	if err != nil {
		return err
	}
	live := b + legacyExt
	in, err := os.Open(live)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalize recording: %w", err)
	}
	defer in.Close()
	final, _ := CastPath(dir, id, to)
	if _, err := os.Stat(final); err == nil {
		// A crash between rename and remove: the final file is complete.
		if err := os.Remove(live); err != nil {
			return fmt.Errorf("finalize recording: remove %s: %w", live, err)
		}
		return nil
	}
	tmp := final + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("finalize recording: %w", err)
	}
	sw, err := newSegmentWriter(out, to)
	if err == nil {
		_, err = io.Copy(sw, in)
		if err == nil {
			err = sw.End()
		}
		sw.drop()
	}
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
		return fmt.Errorf("finalize recording %s: %w", live, err)
	}
	syncDir(filepath.Dir(final))
	if err := os.Remove(live); err != nil {
		return fmt.Errorf("finalize recording: remove %s: %w", live, err)
	}
	return nil
}

// syncDir makes a rename durable. Failure is ignored: some filesystems do
// not support syncing directories, and the data itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
