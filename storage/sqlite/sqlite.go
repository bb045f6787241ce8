package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Store is a storage.Store backed by one SQLite file.
type Store struct {
	w *sql.DB // exactly one connection: every write goes through it
	r *sql.DB // read pool
}

var _ storage.Store = (*Store)(nil)

// busyTimeoutMS bounds how long a writer waits for another process's write
// lock before failing; long enough to ride out a large prune.
const busyTimeoutMS = 10000

// stmtCacheSize is how many prepared statements each connection keeps,
// least recently used first out. The audit insert has one text per batch
// size, so this leaves room for those and every other query.
const stmtCacheSize = 128

// Open opens (creating if needed) the database at dsn, a file path or a
// "file:" URI, and migrates it to the current schema. Parameters already in
// dsn win over ours, so an operator can override them deliberately.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("open sqlite: empty dsn")
	}
	if strings.Contains(dsn, ":memory:") || strings.Contains(dsn, "mode=memory") {
		// Each pooled connection would get its own empty in-memory database.
		return nil, fmt.Errorf("open sqlite %s: in-memory databases are not supported, use a file", dsn)
	}
	// _stmt_cache_size keeps each connection's prepared statements: the
	// queries of every new session (lock, grants, index row, audit insert)
	// are the same few texts, and preparing them again each time was a
	// quarter of the time a churning bastion spent inside SQLite.
	common := fmt.Sprintf("_journal_mode=WAL&_synchronous=FULL&_busy_timeout=%d&_foreign_keys=on&_stmt_cache_size=%d",
		busyTimeoutMS, stmtCacheSize)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	w, err := sql.Open("sqlite3", dsn+sep+common+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate sqlite %s: %w", dsn, err)
	}
	r, err := sql.Open("sqlite3", dsn+sep+common+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s for reading: %w", dsn, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &Store{w: w, r: r}, nil
}

// Close closes both pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// withTx runs fn in a write transaction (BEGIN IMMEDIATE through the single
// writer connection) and commits when fn succeeds.
func (s *Store) withTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the first error is the one worth reporting
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// execSoon runs one autocommit statement on the writer connection with
// synchronous=NORMAL: committed to the WAL and durable across a crash of
// this process when it returns, and on the disk at the next synchronous
// commit, whose fsync of the WAL covers every frame written before it.
//
// It is for session-index rows, each of which the proxy follows at once
// with an audit append (session.start after the row is created, session.end
// after it is ended): that append's commit makes the row durable, so a row
// no longer costs an fsync of its own, and an acknowledged audit event still
// implies its row is on the disk. Only an operating-system crash in the
// moment between the two can lose the row, together with the unacknowledged
// event; the next start then marks such a session interrupted.
func (s *Store) execSoon(ctx context.Context, q string, args ...any) (sql.Result, error) {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return nil, fmt.Errorf("relax synchronous: %w", err)
	}
	res, err := conn.ExecContext(ctx, q, args...)
	// Every other write (the audit chain first) relies on FULL: restore it
	// whatever happened, and never hand a relaxed connection back.
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL"); rerr != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return nil, errors.Join(err, fmt.Errorf("restore synchronous=FULL: %w", rerr))
	}
	return res, err
}

// isUnique reports whether err is a primary-key or unique violation.
func isUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey || se.ExtendedCode == sqlite3.ErrConstraintUnique
	}
	return false
}

// Times are stored as Unix nanoseconds; the zero time is stored as NULL so
// "unset" survives the round trip (UnixNano of the zero time overflows).
func ns(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func nsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ns(*t)
}

func fromNS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64).UTC()
}

func fromNSPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.Unix(0, v.Int64).UTC()
	return &t
}

// encJSON stores list and map columns as JSON text; empty ones as NULL.
func encJSON[T any](v T, empty bool) (any, error) {
	if empty {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decJSON(s sql.NullString, into any) error {
	if !s.Valid || s.String == "" {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(s.String))
	// Numbers stay json.Number so audit fields re-encode to the same text
	// they were hashed with (float64 would round large integers).
	d.UseNumber()
	return d.Decode(into)
}

// encFields stores audit fields as compact JSON with sorted keys and no
// HTML escaping: for fields that went through package audit this is
// byte-for-byte the canonical form that was hashed, which lets a verifier
// hash the stored text without decoding it (see WalkEventsRaw).
func encFields(m map[string]any) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// decFields is decJSON for audit fields, on the hot path of Verify.
func decFields(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// limitClause renders a LIMIT for n > 0.
func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}
