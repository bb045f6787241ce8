package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Builder builds the gatehouse binary at most once per test binary run and
// hands its path to every test that needs it. Create one in TestMain, keep
// it in the test package, and call Close when m.Run returns:
//
//	var builder *e2e.Builder
//
//	func TestMain(m *testing.M) {
//		builder = e2e.NewBuilder()
//		code := m.Run()
//		os.Exit(builder.Close(code))
//	}
//
// Building is lazy so tests that need no gatehouse (and test runs filtered
// with -run) do not pay for it, and a build failure fails only the tests
// that need the binary.
type Builder struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// NewBuilder returns a Builder that has not built anything yet.
func NewBuilder() *Builder { return &Builder{} }

// BuildGatehouse returns the path of the gatehouse binary built from
// ./cmd/gatehouse, building it on first use (with -race when the tests run
// with -race). It fails the test if the build failed.
func (b *Builder) BuildGatehouse(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		b.path, b.err = b.build()
	})
	if b.err != nil {
		t.Fatalf("build gatehouse: %v", b.err)
	}
	return b.path
}

func (b *Builder) build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	// go test caches results keyed on the files the test process itself
	// opened; the go build below runs in a child process, so without this
	// a changed cmd/gatehouse would replay a stale cached pass.
	if err := touchSources(root); err != nil {
		return "", err
	}
	b.dir, err = os.MkdirTemp("", "gatehouse-e2e-bin-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	out := filepath.Join(b.dir, "gatehouse")
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/gatehouse")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var log bytes.Buffer
	cmd.Stdout = &log
	cmd.Stderr = &log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), root, err, log.String())
	}
	return out, nil
}

// Close removes the built binary and reports processes the tests left
// behind. It returns the exit code to use: code, or 1 if it was 0 and a test
// leaked a process.
func (b *Builder) Close(code int) int {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
	if leaked := leakedGoroutines(); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: goroutines of the harness or tests still running after all tests:\n\n%s\n", strings.Join(leaked, "\n\n"))
		if code == 0 {
			code = 1
		}
	}
	if left := Descendants(os.Getpid()); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: processes still running after all tests (a harness or test bug):\n")
		for _, p := range left {
			fmt.Fprintf(os.Stderr, "  pid %d: %s\n", p.PID, p.Cmdline)
		}
		if code == 0 {
			code = 1
		}
	}
	return code
}

// moduleRoot finds the directory holding go.mod for the package under test.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("locate module root (go env GOMOD): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("locate module root: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// touchSources reads every file that can end up in the binary so the go
// command records them as inputs of this test run.
func touchSources(root string) error {
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("read sources under %s: %w", root, err)
	}
	return nil
}

// leakedGoroutines returns the stacks of goroutines started by the harness
// or the e2e tests that are still alive after every test has ended, giving
// them a few seconds to finish first.
func leakedGoroutines() []string {
	var leaked []string
	for i := 0; i < 50; i++ {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if !strings.Contains(g, "gatehouse/internal/e2e") ||
				strings.Contains(g, "(*Builder).Close") || strings.Contains(g, ".TestMain(") {
				continue
			}
			leaked = append(leaked, g)
		}
		if len(leaked) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return leaked
}
