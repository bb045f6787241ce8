package audit_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// openStore opens a fresh SQLite store in a temp dir and returns its path
// so tests can tamper with the file directly.
func openStore(tb testing.TB) (*sqlite.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "gatehouse.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, path
}

// rawDB opens the same file behind the store's back, as an attacker with
// file access would.
func rawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite3", path+"?_busy_timeout=5000")
	if err != nil {
		tb.Fatalf("open raw db: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// fixedClock returns a Now that advances one second per call.
func fixedClock() func() time.Time {
	n := 0
	return func() time.Time {
		n++
		return t0.Add(time.Duration(n) * time.Second)
	}
}

func newLog(tb testing.TB, store storage.AuditStore, opts audit.Options) *audit.Log {
	tb.Helper()
	l := audit.New(store, opts)
	tb.Cleanup(func() { l.Close() })
	return l
}

func mustVerify(tb testing.TB, store storage.AuditStore) audit.Report {
	tb.Helper()
	rep, err := audit.Verify(context.Background(), store)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return rep
}
