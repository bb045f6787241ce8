// Package health holds the checks that say whether a bastion can do its
// job: the running server's readiness (GET /readyz) and `gatehouse doctor`
// share them. A check is a name and an error; its report is one line.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Result is the outcome of one check.
type Result struct {
	Name string
	Err  error
}

// String is the check's report line: "ok   NAME" or "FAIL NAME: REASON",
// the reason kept to one line.
func (r Result) String() string {
	if r.Err == nil {
		return "ok   " + r.Name
	}
	return "FAIL " + r.Name + ": " + oneLine(r.Err.Error())
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Report writes one line per result and reports whether all passed.
func Report(w io.Writer, results []Result) bool {
	ok := true
	for _, r := range results {
		fmt.Fprintln(w, r.String())
		if r.Err != nil {
			ok = false
		}
	}
	return ok
}

// Pinger is a store that can check its connection (storage/postgres).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Store checks that the store answers: its own Ping where it has one, or
// a read of the audit chain's head, which every store has.
func Store(ctx context.Context, s storage.AuditStore) error {
	if p, ok := s.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("ping store: %w", err)
		}
		return nil
	}
	if _, err := s.AuditAnchor(ctx); err != nil {
		return fmt.Errorf("read from store: %w", err)
	}
	return nil
}

// Writable checks that a new file can be created, written and synced in
// dir, the way a recording is, and removes it again. Permission bits are
// not enough to tell for root: an immutable directory, a read-only mount
// or a full disk all refuse root too, so it really writes.
func Writable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("recording storage %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("recording storage %s: not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".gatehouse-probe-*")
	if err != nil {
		return fmt.Errorf("recording storage %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("gatehouse write probe\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("recording storage %s is not writable: %w", dir, err)
	}
	if rerr != nil {
		return fmt.Errorf("recording storage %s: remove probe file: %w", dir, rerr)
	}
	return nil
}
