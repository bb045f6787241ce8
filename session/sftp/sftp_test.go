package sftp

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	pkgsftp "github.com/pkg/sftp"
)

// tap copies r to w, feeding every chunk to fn.
func tap(w io.Writer, r io.Reader, fn func([]byte)) {
	buf := make([]byte, 7000) // odd size: packets straddle reads
	for {
		n, err := r.Read(buf)
		if n > 0 {
			fn(buf[:n])
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if c, ok := w.(io.Closer); ok {
				c.Close()
			}
			return
		}
	}
}

// TestWatchOpenSSHSFTPServer drives OpenSSH's real sftp-server with a real
// SFTP client through the watcher and checks what it reports.
func TestWatchOpenSSHSFTPServer(t *testing.T) {
	server := "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(server); err != nil {
		t.Skip("OpenSSH sftp-server not installed (apt-get install openssh-sftp-server)")
	}
	dir := t.TempDir()
	cmd := exec.Command(server, "-d", dir)
	srvIn, _ := cmd.StdinPipe()
	srvOut, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var mu sync.Mutex
	var ops []Op
	w := NewWatcher(func(o Op) { mu.Lock(); ops = append(ops, o); mu.Unlock() })
	cliR, toCli := io.Pipe()
	fromCli, cliW := io.Pipe()
	go tap(srvIn, fromCli, w.FromClient)
	go tap(toCli, srvOut, w.FromServer)
	c, err := pkgsftp.NewClientPipe(cliR, cliW)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	payload := make([]byte, 300_000)
	for i := range payload {
		payload[i] = byte(i)
	}
	f, err := c.Create(filepath.Join(dir, "a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(payload); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, err = c.Open(filepath.Join(dir, "a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || len(got) != len(payload) {
		t.Fatalf("read back %d bytes: %v", len(got), err)
	}
	f.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Mkdir(filepath.Join(dir, "d")))
	must(c.PosixRename(filepath.Join(dir, "a.bin"), filepath.Join(dir, "d", "b.bin")))
	must(c.Chmod(filepath.Join(dir, "d", "b.bin"), 0o600))
	must(c.Remove(filepath.Join(dir, "d", "b.bin")))
	must(c.RemoveDirectory(filepath.Join(dir, "d")))
	if err := c.Remove(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("removing a missing file succeeded")
	}
	c.Close()
	w.Close()

	mu.Lock()
	defer mu.Unlock()
	want := []Op{
		{Op: "open", Path: filepath.Join(dir, "a.bin"), Mode: "read-write", OK: true}, // Create opens O_RDWR
		{Op: "close", Path: filepath.Join(dir, "a.bin"), Mode: "read-write", Written: int64(len(payload)), OK: true},
		{Op: "open", Path: filepath.Join(dir, "a.bin"), Mode: "read", OK: true},
		{Op: "close", Path: filepath.Join(dir, "a.bin"), Mode: "read", Read: int64(len(payload)), OK: true},
		{Op: "mkdir", Path: filepath.Join(dir, "d"), OK: true},
		{Op: "rename", Path: filepath.Join(dir, "a.bin"), Target: filepath.Join(dir, "d", "b.bin"), OK: true},
		{Op: "setstat", Path: filepath.Join(dir, "d", "b.bin"), OK: true},
		{Op: "remove", Path: filepath.Join(dir, "d", "b.bin"), OK: true},
		{Op: "rmdir", Path: filepath.Join(dir, "d"), OK: true},
		{Op: "remove", Path: filepath.Join(dir, "missing"), OK: false, Status: 2},
		// pkg/sftp's Remove falls back to rmdir when remove fails.
		{Op: "rmdir", Path: filepath.Join(dir, "missing"), OK: false, Status: 2},
	}
	if len(ops) != len(want) {
		t.Fatalf("got %d ops, want %d:\n%+v", len(ops), len(want), ops)
	}
	for i := range want {
		if ops[i] != want[i] {
			t.Errorf("op %d: got %#v, want %#v", i, ops[i], want[i])
		}
	}
}

func FuzzWatcher(f *testing.F) {
	f.Add([]byte{0, 0, 0, 9, 3, 0, 0, 0, 1, 0, 0, 0, 0}, []byte{0, 0, 0, 5, 101, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, client, server []byte) {
		w := NewWatcher(func(Op) {})
		w.FromClient(client)
		w.FromServer(server)
		w.Close()
	})
}
