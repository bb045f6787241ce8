package session

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"
)

// Finished and Spooled find exactly the files Files names: a closed
// recording, a cast its compression left plain, and nothing temporary,
// stray or in the wrong shard.
func TestSpooledFindsWhatFilesNames(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir, "closed-session-1", Header{Width: 80, Height: 24}, RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("hello\r\n"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	name, _ := Name("closed-session-1")
	shard := filepath.Dir(filepath.Join(dir, filepath.FromSlash(name)))
	// What the recorder left, whatever the format names it.
	var closed []string
	entries, _ := os.ReadDir(shard)
	for _, e := range entries {
		closed = append(closed, path.Join(path.Dir(name), e.Name()))
	}
	writeLive(t, dir, "plain-session-1", 2)
	for _, stray := range []string{"closed-session-1.cast.gz.tmp", "notes.txt", "short.cast", "other-session-1.cast.gz"} {
		// other-session-1 is not sharded here: not a recording of it.
		if err := os.WriteFile(filepath.Join(shard, stray), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	got, err := Finished(dir, "closed-session-1")
	if err != nil || len(got) != 1 || !slices.Equal(got, closed) {
		t.Fatalf("Finished(closed-session-1) = %v, %v; want the recorder's file %v", got, err, closed)
	}
	plain, _ := Name("plain-session-1")
	if got, err := Finished(dir, "plain-session-1"); err != nil || !slices.Equal(got, []string{plain + ".cast"}) {
		t.Fatalf("Finished(plain-session-1) = %v, %v; want the plain cast", got, err)
	}
	ids, err := Spooled(dir)
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"closed-session-1", "plain-session-1"}) {
		t.Fatalf("Spooled = %v, %v", ids, err)
	}
	if ids, err := Spooled(filepath.Join(dir, "absent")); err != nil || len(ids) != 0 {
		t.Fatalf("Spooled of a missing directory = %v, %v; want none", ids, err)
	}
}
