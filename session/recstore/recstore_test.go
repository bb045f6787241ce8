package recstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/gatehouse-dev/gatehouse/internal/s3test"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/session/recstore"
)

func s3Store(t *testing.T, srv *s3test.Server, prefix string) *recstore.S3 {
	t.Helper()
	s, err := recstore.NewS3(recstore.S3Options{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region,
		Prefix: prefix, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every Store behaves the same: a local directory and a real S3 server.
func TestConformance(t *testing.T) {
	t.Run("dir", func(t *testing.T) { conformance(t, recstore.Dir(t.TempDir())) })
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Start(t)
		conformance(t, s3Store(t, srv, "team-a/"))
		for _, k := range srv.Keys(t) {
			if !strings.HasPrefix(k, "team-a/") {
				t.Errorf("object %q is outside the configured prefix", k)
			}
		}
	})
}

func conformance(t *testing.T, s recstore.Store) {
	ctx := context.Background()
	const name = "ab/session-0001.cast.gz"
	if _, err := s.Stat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of an absent name: want fs.ErrNotExist, got %v", err)
	}
	if _, err := s.Get(ctx, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of an absent name: want fs.ErrNotExist, got %v", err)
	}
	data := bytes.Repeat([]byte("recording\x00\xff"), 10000)
	if err := s.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	info, err := s.Stat(ctx, name)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat after Put: %+v, %v; want size %d", info, err, len(data))
	}
	rc, err := s.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes (%v), want the %d put", len(got), err, len(data))
	}
	// Replacing keeps only the new content.
	if err := s.Put(ctx, name, strings.NewReader("short"), 5); err != nil {
		t.Fatalf("Put again: %v", err)
	}
	f, err := recstore.FS(ctx, s).Open(name)
	if err != nil {
		t.Fatalf("FS.Open: %v", err)
	}
	got, _ = io.ReadAll(f)
	fi, err := f.Stat()
	f.Close()
	if string(got) != "short" || err != nil || fi.Size() != 5 || fi.Name() != "session-0001.cast.gz" {
		t.Fatalf("FS read %q, stat %v %v", got, fi, err)
	}
	// A reader that ends early is not stored as a whole object.
	if err := s.Put(ctx, "ab/short.raw", strings.NewReader("abc"), 10); err == nil {
		if _, err := s.Stat(ctx, "ab/short.raw"); err == nil {
			t.Errorf("Put of 3 bytes announced as 10 stored an object")
		}
	}
	for _, bad := range []string{"../x", "/abs", "a//b", ""} {
		if err := s.Put(ctx, bad, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Put(%q) accepted a name that is not a valid path", bad)
		}
	}
	if err := s.Remove(ctx, name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := s.Remove(ctx, name); err != nil {
		t.Fatalf("Remove of an absent name: %v", err)
	}
	if _, err := s.Stat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Remove: want fs.ErrNotExist, got %v", err)
	}
}

// record writes a finished session to spool the way the bastion does: a
// cast and a raw store.
func record(t *testing.T, spool, id string, u *recstore.Uploader, to ...age.Recipient) {
	t.Helper()
	if u != nil {
		u.Opened(id)
		u.Opened(id)
	}
	r, err := session.NewRecorder(spool, id, session.Header{Width: 80, Height: 24}, session.RecorderOptions{Encrypt: to})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := session.NewRawRecorder(spool, id, session.RawOptions{Encrypt: to})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("hello from " + id + "\r\n"))
	raw.Write(session.Stdout, []byte("raw bytes of "+id))
	if _, err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	if u != nil {
		u.Closed(id)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if u != nil {
		u.Closed(id)
	}
}

// readBack reads session id's cast and raw stdout through the spool and
// the store together, as export and the web player do.
func readBack(t *testing.T, spool string, s recstore.Store, id string, ids ...age.Identity) (cast, stdout string) {
	t.Helper()
	fsys := recstore.Union(os.DirFS(spool), recstore.FS(context.Background(), s))
	rc, err := session.OpenFS(fsys, id, ids...)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	rr, c, err := session.OpenRawFS(fsys, id, ids...)
	if err != nil {
		t.Fatalf("open raw %s: %v", id, err)
	}
	defer c.Close()
	var out bytes.Buffer
	if _, _, err := session.ExportStream(&out, rr, session.Stdout); err != nil {
		t.Fatal(err)
	}
	return string(b), out.String()
}

// fileNamed is the one of session.Files(id) ending in suffix.
func fileNamed(t *testing.T, id, suffix string) string {
	t.Helper()
	names, err := session.Files(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, suffix) {
			return n
		}
	}
	t.Fatalf("session.Files(%s) = %v: none ends in %s", id, names, suffix)
	return ""
}

func spoolFiles(t *testing.T, spool string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(spool, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func waitUploaded(t *testing.T, u *recstore.Uploader, spool string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for u.Pending() > 0 || len(spoolFiles(t, spool)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("uploads still pending: %d sessions, spool holds %v", u.Pending(), spoolFiles(t, spool))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A session's files go to the bucket when its last recorder closes, leave
// the spool only once there, and read back the same from the bucket.
func TestUploaderMovesFinishedSessions(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv, "")
	spool := t.TempDir()
	u := recstore.NewUploader(spool, store, recstore.UploaderOptions{MinBackoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)

	// A live session stays in the spool while its recorders are open.
	u.Opened("live-session-1")
	live, err := session.NewRecorder(spool, "live-session-1", session.Header{Width: 80, Height: 24}, session.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live.Output([]byte("still typing"))
	if err := live.Flush(); err != nil {
		t.Fatal(err)
	}

	record(t, spool, "ended-session-1", u)
	deadline := time.Now().Add(30 * time.Second)
	for len(srv.Keys(t)) < 2 || u.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not uploaded: bucket has %v", srv.Keys(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := spoolFiles(t, spool); len(left) != 1 || !strings.HasPrefix(filepath.Base(left[0]), "live-session-1.") {
		t.Fatalf("the spool should hold only the live session's cast, holds %v", left)
	}
	cast, stdout := readBack(t, spool, store, "ended-session-1")
	if !strings.Contains(cast, "hello from ended-session-1") || stdout != "raw bytes of ended-session-1" {
		t.Fatalf("read back from the bucket: cast %q, stdout %q", cast, stdout)
	}
	// The live one is read from the spool.
	if cast, err := session.OpenFS(recstore.Union(os.DirFS(spool), recstore.FS(ctx, store)), "live-session-1"); err != nil {
		t.Fatalf("open live recording through the union: %v", err)
	} else {
		cast.Close()
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	u.Closed("live-session-1")
	waitUploaded(t, u, spool)
}

// A bucket that is down keeps recordings in the spool; the upload is
// retried until it lands.
func TestUploaderRetriesUntilTheBucketIsBack(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv, "")
	spool := t.TempDir()
	srv.Stop()
	u := recstore.NewUploader(spool, store, recstore.UploaderOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	record(t, spool, "outage-session-1", u)
	time.Sleep(300 * time.Millisecond) // a few failed attempts, not a timing assertion
	if n := len(spoolFiles(t, spool)); n != 2 {
		t.Fatalf("with the bucket down the spool must keep both files, holds %d", n)
	}
	srv.Restart()
	waitUploaded(t, u, spool)
	if _, stdout := readBack(t, spool, store, "outage-session-1"); stdout != "raw bytes of outage-session-1" {
		t.Fatalf("after the retry the bucket holds stdout %q", stdout)
	}
}

// What a stopped bastion left in the spool is uploaded at the next start.
func TestUploaderResumesAfterRestart(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv, "")
	spool := t.TempDir()
	record(t, spool, "before-restart-1", nil)
	record(t, spool, "before-restart-2", nil)
	// A crash left a plain cast; the bastion finalizes it before Resume.
	if err := session.Finalize(spool, "before-restart-1"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(spool, "stray.txt"), []byte("not a recording"), 0o600)
	// A cast whose compression failed stays plain; it goes up as it is.
	plain := filepath.Join(spool, filepath.FromSlash(fileNamed(t, "plain-cast-1", ".cast")))
	os.MkdirAll(filepath.Dir(plain), 0o700)
	if err := os.WriteFile(plain, []byte(`{"version": 2, "width": 80, "height": 24}`+"\n"+`[0.5, "o", "plain words"]`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := recstore.NewUploader(spool, store, recstore.UploaderOptions{})
	if err := u.Resume(); err != nil {
		t.Fatal(err)
	}
	if u.Pending() != 3 {
		t.Fatalf("Resume queued %d sessions, want 3", u.Pending())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for u.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("resumed uploads never finished")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := spoolFiles(t, spool); len(left) != 1 || filepath.Base(left[0]) != "stray.txt" {
		t.Fatalf("the spool should hold only the stray file, holds %v", left)
	}
	if len(srv.Keys(t)) != 5 {
		t.Fatalf("bucket holds %v, want 3 casts and 2 raw stores", srv.Keys(t))
	}
	rc, err := session.OpenFS(recstore.FS(ctx, store), "plain-cast-1")
	if err != nil {
		t.Fatalf("open the plain cast from the bucket: %v", err)
	}
	defer rc.Close()
	if found, err := session.Grep(rc, "plain words"); !found || err != nil {
		t.Fatalf("the plain cast read back from the bucket lacks its text: %v, %v", found, err)
	}
}

// With recording.encrypt_to the bucket gets the encrypted files as they
// are, and reading them back from it takes the identity.
func TestUploaderKeepsRecordingsEncrypted(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv, "")
	spool := t.TempDir()
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	record(t, spool, "sealed-session-1", nil, key.Recipient())
	u := recstore.NewUploader(spool, store, recstore.UploaderOptions{})
	if err := u.Resume(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	waitUploaded(t, u, spool)
	keys := srv.Keys(t)
	if len(keys) != 2 {
		t.Fatalf("bucket holds %v, want the cast and the raw store", keys)
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, ".ages") {
			t.Fatalf("bucket holds %s: not an encrypted file", k)
		}
		rc, err := store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if bytes.Contains(b, []byte("sealed-session-1")) {
			t.Fatalf("object %s holds plaintext", k)
		}
	}
	if _, err := session.OpenFS(recstore.FS(ctx, store), "sealed-session-1"); !errors.Is(err, session.ErrEncrypted) {
		t.Fatalf("reading the encrypted cast from the bucket without an identity: want ErrEncrypted, got %v", err)
	}
	if !session.EncryptedFS(recstore.FS(ctx, store), "sealed-session-1") {
		t.Fatal("EncryptedFS does not see the encrypted cast in the bucket")
	}
	cast, stdout := readBack(t, spool, store, "sealed-session-1", key)
	if !strings.Contains(cast, "hello from sealed-session-1") || stdout != "raw bytes of sealed-session-1" {
		t.Fatalf("read back with the identity: cast %q, stdout %q", cast, stdout)
	}
}

// Check says whether the bucket answers and exists (readiness, doctor).
func TestS3Check(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	if err := s3Store(t, srv, "").Check(ctx); err != nil {
		t.Fatalf("Check of a running server's bucket: %v", err)
	}
	missing, err := recstore.NewS3(recstore.S3Options{Endpoint: srv.Endpoint, Bucket: "no-such-bucket", Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.Check(ctx); err == nil || !strings.Contains(err.Error(), "no such bucket") {
		t.Fatalf("Check of a missing bucket: %v", err)
	}
	srv.Stop()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s3Store(t, srv, "").Check(cctx); err == nil {
		t.Fatal("Check of a stopped server passed")
	}
}

// Run returns when its context ends, even with an upload that cannot
// finish (the bastion's shutdown must not wait on the bucket).
func TestUploaderStopsWithItsContext(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv, "")
	srv.Stop()
	spool := t.TempDir()
	record(t, spool, "stopping-session-1", nil)
	u := recstore.NewUploader(spool, store, recstore.UploaderOptions{})
	if err := u.Resume(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := len(spoolFiles(t, spool)); n != 2 {
		t.Fatalf("the spool must keep the unfinished upload for the next start, holds %d files", n)
	}
}
