package session

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// legacyPath is where earlier versions wrote a live recording.
func legacyPath(t *testing.T, dir, id string) string {
	t.Helper()
	b, err := base(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	return b + legacyExt
}

// writeLive leaves a plain recording for id, as a crash of an earlier
// version would, and returns its bytes.
func writeLive(t *testing.T, dir, id string, events int) []byte {
	t.Helper()
	live := legacyPath(t, dir, id)
	if err := os.MkdirAll(filepath.Dir(live), 0o700); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(`{"version": 2, "width": 80, "height": 24}` + "\n")
	for i := range events {
		fmt.Fprintf(&b, "[%d.5, \"o\", \"%s line %d\\r\\n\"]\n", i, id, i)
	}
	if err := os.WriteFile(live, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readRecording(t *testing.T, dir, id string) []byte {
	t.Helper()
	rc, err := Open(dir, id)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return data
}

// Compressors are reused between recordings: every final file must hold
// exactly its own recording, whatever size the ones before it had, also
// when many are finalized at once.
func TestFinalizeManyRecordingsConcurrently(t *testing.T) {
	dir := t.TempDir()
	// Header only, a few lines, more than one read buffer, and many.
	sizes := []int{0, 3, 4000, 40000}
	want := map[string][]byte{}
	var ids []string
	for i := range 24 {
		id := fmt.Sprintf("sess%04d-finalize", i)
		want[id] = writeLive(t, dir, id, sizes[i%len(sizes)])
		ids = append(ids, id)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Finalize(dir, id); err != nil {
				errs <- fmt.Errorf("finalize %s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range ids {
		live := legacyPath(t, dir, id)
		if _, err := os.Stat(live); err == nil {
			t.Errorf("%s: live file remains after Finalize", id)
		}
		if got := readRecording(t, dir, id); !bytes.Equal(got, want[id]) {
			t.Errorf("%s: final recording is %d bytes, want its own %d bytes", id, len(got), len(want[id]))
		}
	}
}

// A compression that fails midway leaves the live recording for the next
// try and puts nothing of it into the next recording compressed.
func TestFinalizeAfterFailedCompression(t *testing.T) {
	dir := t.TempDir()
	const bad, good = "badrecording-0001", "goodrecording-0002"
	live := legacyPath(t, dir, bad)
	// A directory where the plain file should be: opening works, reading
	// fails after the zstd stream has begun.
	if err := os.MkdirAll(live, 0o700); err != nil {
		t.Fatal(err)
	}
	want := writeLive(t, dir, good, 50)
	for range 3 {
		err := Finalize(dir, bad)
		if err == nil || !strings.Contains(err.Error(), "finalize recording") {
			t.Fatalf("Finalize of an unreadable recording: %v, want a finalize error", err)
		}
		final, _ := CastPath(dir, bad, nil)
		if _, err := os.Stat(final); err == nil {
			t.Fatalf("a failed compression left a final file")
		}
		if _, err := os.Stat(final + ".tmp"); err == nil {
			t.Fatalf("a failed compression left its temporary file")
		}
	}
	if err := Finalize(dir, good); err != nil {
		t.Fatalf("Finalize: %v", err)
	}
	if got := readRecording(t, dir, good); !bytes.Equal(got, want) {
		t.Errorf("recording compressed after a failure:\n%s\nwant:\n%s", got, want)
	}
}
