// Package immutable makes a directory refuse new files for a test, root
// included: tests run as root, and root ignores permission bits, so a
// chmod proves nothing. chattr +i (the immutable attribute) stops root too.
package immutable

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Dir makes dir immutable until the test ends or the returned function is
// called. It skips the test when the filesystem has no immutable
// attribute, and fails it when a file can still be created in dir (the
// test would prove nothing).
func Dir(t testing.TB, dir string) (writable func()) {
	t.Helper()
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: cannot make %s immutable (chattr +i: %v %s); the filesystem does not support it", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
	if f, err := os.Create(filepath.Join(dir, "root-can-write")); err == nil {
		f.Close()
		t.Fatalf("a file could still be created in the immutable %s; the test would prove nothing", dir)
	}
	return func() {
		t.Helper()
		if err := exec.Command("chattr", "-i", dir).Run(); err != nil {
			t.Fatalf("chattr -i %s: %v", dir, err)
		}
	}
}
