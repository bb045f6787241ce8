package session

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const secretMarker = "TOP-SECRET-MARKER-7f3a"

// An encrypted recording holds no plaintext on disk, reads back with the
// identity of any recipient, and refuses to read without one.
func TestRecorderEncrypts(t *testing.T) {
	dir := t.TempDir()
	team, backup, stranger := newIdentity(t), newIdentity(t), newIdentity(t)
	r := newTestRecorder(t, dir, RecorderOptions{Encrypt: []age.Recipient{team.Recipient(), backup.Recipient()}})
	path, _ := CastPath(dir, testID, []age.Recipient{team.Recipient()})
	if r.Path() != path || !strings.HasSuffix(path, ".cast.ages") {
		t.Errorf("Path() = %s, want %s ending .cast.ages", r.Path(), path)
	}
	for range 50 {
		r.Output([]byte("echo " + secretMarker + "\r\n"))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	all, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(all) != 1 || all[0] != path {
		t.Fatalf("files: %v, want only %s", all, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{secretMarker, "db-1", "xterm", `"version"`} {
		if bytes.Contains(data, []byte(leak)) {
			t.Errorf("encrypted file contains %q in plaintext", leak)
		}
	}
	if !bytes.HasPrefix(data, []byte(agesMagic)) {
		t.Errorf("file starts %q, want the encrypted magic", data[:min(len(data), 20)])
	}
	if _, err := Open(dir, testID); !errors.Is(err, ErrEncrypted) {
		t.Errorf("Open without identity: %v, want ErrEncrypted", err)
	}
	if rc, err := Open(dir, testID, stranger); err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, ErrWrongIdentity) {
			t.Errorf("read with a stranger's identity: %v, want ErrWrongIdentity", err)
		}
	} else if !errors.Is(err, ErrWrongIdentity) {
		t.Errorf("Open with a stranger's identity: %v, want ErrWrongIdentity", err)
	}
	for name, id := range map[string]age.Identity{"team": team, "backup": backup} {
		rc, err := Open(dir, testID, stranger, id)
		if err != nil {
			t.Fatalf("%s: Open: %v", name, err)
		}
		var out bytes.Buffer
		err = Export(&out, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: Export: %v", name, err)
		}
		if n := strings.Count(out.String(), secretMarker); n != 50 {
			t.Errorf("%s: export has %d markers, want 50", name, n)
		}
	}
}

// A segment is ended whenever the flush interval passes, so an encrypted
// recording killed mid-session reads up to near the kill: here the file is
// cut inside its last segment, and everything before it decrypts.
func TestEncryptedRecordingCutShort(t *testing.T) {
	dir := t.TempDir()
	id := newIdentity(t)
	r := newTestRecorder(t, dir, RecorderOptions{Encrypt: []age.Recipient{id.Recipient()}})
	r.Output([]byte("first\r\n"))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	flushed, _ := os.Stat(r.Path())
	r.Output([]byte("second\r\n"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(r.Path())
	if int64(len(data)) <= flushed.Size() {
		t.Fatalf("second segment missing: %d bytes after flush, %d at close", flushed.Size(), len(data))
	}
	for _, cut := range []int64{flushed.Size() + 2, flushed.Size() + 100, int64(len(data)) - 1} {
		if err := os.WriteFile(r.Path(), data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		rc, err := Open(dir, testID, id)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = Export(&out, rc)
		rc.Close()
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: Export = %v, want ErrTruncated", cut, err)
		}
		if !strings.Contains(out.String(), "first") || strings.Contains(out.String(), "second") {
			t.Errorf("cut at %d: exported %q, want the first segment only", cut, out.String())
		}
	}
}

// Large output is split into segments of bounded size, which all decrypt.
func TestEncryptedLargeOutput(t *testing.T) {
	dir := t.TempDir()
	id := newIdentity(t)
	r := newTestRecorder(t, dir, RecorderOptions{Encrypt: []age.Recipient{id.Recipient()}})
	rng := rand.New(rand.NewPCG(1, 2))
	var want strings.Builder
	for i := range 200 {
		b := make([]byte, 16<<10)
		for j := range b {
			b[j] = 'a' + byte(rng.IntN(26))
		}
		b[0] = byte('0' + i%10)
		r.Output(b)
		want.Write(b)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(r.Path())
	if n := bytes.Count(data, []byte("age-encryption.org/v1")); n < 3 {
		t.Errorf("%d segments for %d bytes, want several of at most %d", n, want.Len(), maxSegment)
	}
	rc, err := Open(dir, testID, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, events, err := Parse(rc)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for ev, err := range events {
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(ev.Data)
	}
	if got.String() != want.String() {
		t.Errorf("read %d bytes back, want the %d written", got.Len(), want.Len())
	}
}

// The raw store is encrypted like the cast, and its summary (sizes and
// hashes of the plaintext streams) is unchanged by it.
func TestRawRecorderEncrypts(t *testing.T) {
	dir := t.TempDir()
	const id = "rawsecret-0001"
	ident := newIdentity(t)
	plain, err := NewRawRecorder(t.TempDir(), id, RawOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRawRecorder(dir, id, RawOptions{Encrypt: []age.Recipient{ident.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*RawRecorder{plain, r} {
		rec.Write(Stdin, []byte("password "+secretMarker))
		rec.Write(Stdout, []byte("\x00binary "+secretMarker))
	}
	want, err := plain.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sum != want {
		t.Errorf("summary %+v, want the plain store's %+v", sum, want)
	}
	path, _ := RawPath(dir, id, []age.Recipient{ident.Recipient()})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(secretMarker)) || bytes.Contains(data, []byte(rawMagic)) {
		t.Error("encrypted raw store holds plaintext")
	}
	if _, _, err := OpenRaw(dir, id); !errors.Is(err, ErrEncrypted) {
		t.Errorf("OpenRaw without identity: %v, want ErrEncrypted", err)
	}
	rr, c, err := OpenRaw(dir, id, ident)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out bytes.Buffer
	if _, truncated, err := ExportStream(&out, rr, Stdin); err != nil || truncated {
		t.Fatalf("ExportStream: truncated %v, %v", truncated, err)
	}
	if out.String() != "password "+secretMarker {
		t.Errorf("stdin = %q", out.String())
	}
}

// Recordings of earlier versions (gzip, closed) stay readable.
func TestOpenLegacyGzip(t *testing.T) {
	dir := t.TempDir()
	b, _ := base(dir, testID)
	if err := os.MkdirAll(filepath.Dir(b), 0o700); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	io.WriteString(zw, validHeader+`[0.5, "o", "from gzip\r\n"]`+"\n")
	zw.Close()
	if err := os.WriteFile(b+legacyGzExt, z.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, evs := readAll(t, dir, testID)
	if len(evs) != 1 || evs[0].Data != "from gzip\r\n" {
		t.Errorf("events = %q", evs)
	}
	if _, err := NewRecorder(dir, testID, Header{}, RecorderOptions{}); err == nil {
		t.Error("a new recorder was started over a gzip recording")
	}
}

// Raw stores of earlier versions (the same records in gzip members) stay
// readable: today's store, decoded and gzipped, reads back the same.
func TestOpenLegacyGzipRaw(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRawRecorder(dir, testID, RawOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Write(Stdin, []byte("ls -l\n"))
	r.Write(Stdout, []byte("total 0\n"))
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := base(dir, testID)
	f, err := os.Open(b + rawExt)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := io.Copy(zw, plain); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	plain.Close()
	f.Close()
	if err := os.WriteFile(b+legacyRawGzExt, z.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(b + rawExt); err != nil {
		t.Fatal(err)
	}
	rr, c, err := OpenRaw(dir, testID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", rec.Stream, rec.Data))
	}
	if want := fmt.Sprintf("%d:ls -l\n %d:total 0\n", Stdin, Stdout); strings.Join(got, " ") != want {
		t.Errorf("records %q, want %q", got, want)
	}
}

// A zstd cast cut inside a frame reads its earlier frames and then
// reports the cut.
func TestZstdCutInsideFrame(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{})
	r.Output([]byte("kept\r\n"))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	flushed, _ := os.Stat(r.Path())
	r.Output(bytes.Repeat([]byte("lost "), 10000))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(r.Path())
	if err := os.WriteFile(r.Path(), data[:flushed.Size()+(int64(len(data))-flushed.Size())/2], 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(dir, testID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if err := Export(&out, rc); !errors.Is(err, ErrTruncated) {
		t.Errorf("Export = %v, want ErrTruncated", err)
	}
	if !strings.Contains(out.String(), "kept") {
		t.Errorf("export lost the complete frame: %q", out.String())
	}
}

func TestFilesNamesEveryForm(t *testing.T) {
	got, err := Files(testID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := base("", testID)
	want := []string{b + ".cast.ages", b + ".cast.zst", b + ".cast.gz", b + ".cast", b + ".raw.ages", b + ".raw.zst", b + ".raw.gz"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Files = %v, want %v", got, want)
	}
}

// The flush timer, not only Close or Flush, ends segments: each burst of
// output separated by more than the interval is a segment of its own, on
// disk (and decryptable) before the next one starts.
func TestSegmentsEndOnTimer(t *testing.T) {
	dir := t.TempDir()
	id := newIdentity(t)
	r := newTestRecorder(t, dir, RecorderOptions{FlushInterval: 5 * time.Millisecond, Encrypt: []age.Recipient{id.Recipient()}})
	for i := range 3 {
		r.Output([]byte("burst\r\n"))
		deadline := time.Now().Add(10 * time.Second)
		for {
			data, _ := os.ReadFile(r.Path())
			if bytes.Count(data, []byte("age-encryption.org/v1")) == i+2 { // the header's and this burst's
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("burst %d never reached the disk as a segment", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSmallSegment is the cost of one keystroke's echo reaching the
// disk in an interactive session: one short segment, plain or encrypted.
func BenchmarkSmallSegment(b *testing.B) {
	line := []byte(`[1.234567, "o", "l"]` + "\n")
	for _, variant := range []string{"plain", "encrypted"} {
		b.Run(variant, func(b *testing.B) {
			var to []age.Recipient
			if variant == "encrypted" {
				to = []age.Recipient{newIdentity(b).Recipient()}
			}
			sw, err := newSegmentWriter(io.Discard, to)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sw.Write(line); err != nil {
					b.Fatal(err)
				}
				if err := sw.End(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
