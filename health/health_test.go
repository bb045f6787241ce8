package health

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritable(t *testing.T) {
	dir := t.TempDir()
	if err := Writable(dir); err != nil {
		t.Fatalf("a fresh directory: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the probe left %d files behind", len(left))
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Writable(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: want not a directory, got %v", err)
	}
	if err := Writable(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory passed")
	}
}

func TestReportIsOneLinePerCheck(t *testing.T) {
	var b bytes.Buffer
	ok := Report(&b, []Result{{Name: "store"}, {Name: "recording storage", Err: errors.New("disk\nfull  now")}})
	if ok {
		t.Error("a failing check must make Report false")
	}
	want := "ok   store\nFAIL recording storage: disk full now\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
