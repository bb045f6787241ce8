package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

func TestOpenSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", fmt.Sprint(busyTimeoutMS)},
	}
	for _, tc := range tests {
		for name, db := range map[string]queryer{"writer": s.w, "reader": s.r} {
			var got string
			if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s on %s: %v", tc.pragma, name, err)
			}
			if got != tc.want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", name, tc.pragma, got, tc.want)
			}
		}
	}
	// The read pool must refuse writes so no write sneaks past the writer.
	if _, err := s.r.ExecContext(ctx, `DELETE FROM locks`); err == nil {
		t.Errorf("write through the read pool succeeded")
	}
}

func TestMigrationsOnReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.PutLock(ctx, storage.Lock{User: "bob", Reason: "r", Created: time.Unix(1, 0)}); err != nil {
		t.Fatalf("PutLock: %v", err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n, v int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if n != len(migrations()) || v != len(migrations()) {
		t.Fatalf("schema_migrations has %d rows up to version %d, want %d", n, v, len(migrations()))
	}
	if _, err := s.ActiveLock(ctx, "bob", time.Unix(2, 0)); err != nil {
		t.Fatalf("data lost across reopen: %v", err)
	}
}

// Two Stores on one file stand in for two processes (gatehouse serve and a
// CLI, or two bastions sharing a disk): their appends must still form one
// chain, which only SQLite's write lock can guarantee.
func TestTwoStoresOneChain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	var stores []*Store
	for range 2 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	seal := func(ev *storage.Event) []byte {
		h := sha256.Sum256(fmt.Appendf(bytes.Clone(ev.PrevHash), "%d", ev.Seq))
		return h[:]
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, err := stores[i%2].AppendEvents(ctx, []storage.Event{{Time: time.Unix(0, 1), Type: "x"}}, seal); err != nil {
					t.Errorf("AppendEvents: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var prev []byte
	var want int64
	err := stores[0].WalkEvents(ctx, func(ev storage.Event) error {
		want++
		if ev.Seq != want || !bytes.Equal(ev.PrevHash, prev) {
			return fmt.Errorf("event %d (want seq %d) does not chain", ev.Seq, want)
		}
		prev = ev.Hash
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want != 200 {
		t.Fatalf("%d events, want 200", want)
	}
}
