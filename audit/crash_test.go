package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

const crashEnv = "GATEHOUSE_AUDIT_CRASH_DB"

// TestCrashHelper is the child of TestCrashKeepsChain: it appends from
// several goroutines until killed, printing "ack N" after Append returned
// for the event with field n=N.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrashKeepsChain")
	}
	ctx := context.Background()
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	l := audit.New(store, audit.Options{})
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				n := g*10_000_000 + i
				if err := l.Append(ctx, storage.Event{Type: audit.TypeExec, Actor: "crash", Fields: map[string]any{"n": n}}); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d\n", n)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashKeepsChain kills a process in the middle of heavy appending
// with SIGKILL and checks that the chain still verifies and that every
// append the process saw acknowledged is in it.
func TestCrashKeepsChain(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	acked := map[int64]bool{}
	sc := bufio.NewScanner(stdout)
	for len(acked) < 3000 && sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("helper said %q", sc.Text())
			}
			acked[v] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
		t.Fatalf("kill helper: %v", err)
	}
	// Acks already written to the pipe were also acknowledged.
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil {
				acked[v] = true
			}
		}
	}
	cmd.Wait()
	if len(acked) < 3000 {
		t.Fatalf("helper stopped after %d acks: %s", len(acked), stderr.String())
	}

	ctx := context.Background()
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer store.Close()
	rep := mustVerify(t, store)
	if !rep.OK {
		t.Fatalf("chain broken by crash: %+v", rep)
	}
	stored := map[int64]bool{}
	err = store.WalkEvents(ctx, func(ev storage.Event) error {
		n, err := ev.Fields["n"].(json.Number).Int64()
		stored[n] = true
		return err
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	for n := range acked {
		if !stored[n] {
			t.Fatalf("acknowledged event n=%d lost in the crash", n)
		}
	}
	t.Logf("%d acknowledged, %d stored, chain of %d verified", len(acked), len(stored), rep.Events)
}
