package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const eventCols = `seq, time, type, actor, target, outcome, fields, prev_hash, hash`

// insertChunk is how many events one INSERT carries (9 parameters each,
// well under SQLite's 32766-parameter limit).
const insertChunk = 128

func insertEvents(n int) string {
	return `INSERT INTO events(` + eventCols + `) VALUES (?,?,?,?,?,?,?,?,?)` + strings.Repeat(`,(?,?,?,?,?,?,?,?,?)`, n-1)
}

// AppendEvents implements storage.AuditStore. The write transaction is
// BEGIN IMMEDIATE, so the read of the chain head and the inserts cannot
// interleave with another appender in this or any other process.
func (s *Store) AppendEvents(ctx context.Context, evs []storage.Event, seal func(ev *storage.Event) []byte) ([]storage.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	out := make([]storage.Event, len(evs))
	copy(out, evs)
	// Encode fields before taking the lock: it is the slow part.
	fields := make([]any, len(out))
	for i := range out {
		f, err := encFields(out[i].Fields)
		if err != nil {
			return nil, fmt.Errorf("append audit events: encode fields of %s event: %w", out[i].Type, err)
		}
		fields[i] = f
	}
	err := s.withTx(ctx, "append audit events", func(tx *sql.Tx) error {
		seq, prev, err := chainHead(ctx, tx)
		if err != nil {
			return err
		}
		for i := range out {
			ev := &out[i]
			seq++
			ev.Seq = seq
			ev.PrevHash = prev
			ev.Time = ev.Time.UTC()
			ev.Hash = seal(ev)
			prev = ev.Hash
		}
		// Multi-row INSERTs: one statement per insertChunk events costs far
		// fewer cgo round trips than one per event, and the writer is the
		// bottleneck of group commit.
		var full *sql.Stmt
		for start := 0; start < len(out); start += insertChunk {
			end := min(start+insertChunk, len(out))
			args := make([]any, 0, 9*(end-start))
			for i := start; i < end; i++ {
				ev := &out[i]
				args = append(args, ev.Seq, ev.Time.UnixNano(), ev.Type, ev.Actor, ev.Target, ev.Outcome, fields[i], ev.PrevHash, ev.Hash)
			}
			var err error
			if end-start == insertChunk {
				if full == nil {
					if full, err = tx.PrepareContext(ctx, insertEvents(insertChunk)); err != nil {
						return fmt.Errorf("append audit events: prepare: %w", err)
					}
					defer full.Close()
				}
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, insertEvents(end-start), args...)
			}
			if err != nil {
				return fmt.Errorf("append audit events %d to %d: %w", out[start].Seq, out[end-1].Seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// chainHead returns the last (seq, hash): the newest stored event, or the
// anchor when retention pruned everything.
func chainHead(ctx context.Context, tx *sql.Tx) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if err == nil {
		return seq, hash, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("read audit chain head: %w", err)
	}
	a, err := anchor(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	return a.Seq, a.Hash, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func anchor(ctx context.Context, q queryer) (storage.Anchor, error) {
	var a storage.Anchor
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_anchor WHERE id = 1`).Scan(&a.Seq, &a.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Anchor{}, nil
	}
	if err != nil {
		return storage.Anchor{}, fmt.Errorf("read audit anchor: %w", err)
	}
	return a, nil
}

// AuditAnchor implements storage.AuditStore.
func (s *Store) AuditAnchor(ctx context.Context) (storage.Anchor, error) {
	return anchor(ctx, s.r)
}

// ListEvents implements storage.AuditStore.
func (s *Store) ListEvents(ctx context.Context, f storage.EventFilter) ([]storage.Event, error) {
	var where []string
	var args []any
	if f.Type != "" {
		where = append(where, "type = ?")
		args = append(args, f.Type)
	}
	if f.User != "" {
		where = append(where, "(actor = ? OR target = ?)")
		args = append(args, f.User, f.User)
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Until.UnixNano())
	}
	if f.After > 0 {
		where = append(where, "seq > ?")
		args = append(args, f.After)
	}
	q := `SELECT ` + eventCols + ` FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Newest {
		q += " ORDER BY seq DESC"
	} else {
		q += " ORDER BY seq"
	}
	q += limitClause(f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []storage.Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

func scanEvent(rows *sql.Rows) (storage.Event, error) {
	var ev storage.Event
	var t int64
	var fields []byte
	if err := rows.Scan(&ev.Seq, &t, &ev.Type, &ev.Actor, &ev.Target, &ev.Outcome, &fields, &ev.PrevHash, &ev.Hash); err != nil {
		return ev, fmt.Errorf("scan event: %w", err)
	}
	ev.Time = time.Unix(0, t).UTC()
	m, err := decFields(fields)
	if err != nil {
		return ev, fmt.Errorf("decode fields of event %d: %w", ev.Seq, err)
	}
	ev.Fields = m
	return ev, nil
}

// WalkEvents implements storage.AuditStore. One query streams the whole
// table from a single read snapshot, so a concurrent prune or append cannot
// make the walk see a torn chain.
func (s *Store) WalkEvents(ctx context.Context, fn func(storage.Event) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("walk audit events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("walk audit events: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("walk audit events: %w", err)
	}
	return nil
}

// WalkEventsRaw is WalkEvents for verifiers: it visits the events with
// from <= seq <= to (to <= 0: no upper bound) in seq order, each with Fields
// nil and the stored fields JSON (nil when the event has none) in raw,
// valid only during the call. Skipping the JSON decode, and walking several
// ranges on separate connections at once, makes verifying a long chain
// several times faster; package audit uses it when present.
func (s *Store) WalkEventsRaw(ctx context.Context, from, to int64, fn func(ev storage.Event, raw []byte) error) error {
	q := `SELECT ` + eventCols + ` FROM events WHERE seq >= ? ORDER BY seq`
	args := []any{from}
	if to > 0 {
		q = `SELECT ` + eventCols + ` FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq`
		args = append(args, to)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("walk audit events %d to %d: %w", from, to, err)
	}
	defer rows.Close()
	var t int64
	var fields sql.RawBytes
	for rows.Next() {
		var ev storage.Event
		if err := rows.Scan(&ev.Seq, &t, &ev.Type, &ev.Actor, &ev.Target, &ev.Outcome, &fields, &ev.PrevHash, &ev.Hash); err != nil {
			return fmt.Errorf("walk audit events: scan: %w", err)
		}
		ev.Time = time.Unix(0, t).UTC()
		if err := fn(ev, fields); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("walk audit events %d to %d: %w", from, to, err)
	}
	return nil
}

// PruneEvents implements storage.AuditStore. It removes the longest prefix
// of the chain whose events are all older than before. Event times are only
// nearly monotonic in seq (clocks of several bastions, batching), and
// deleting an old event that sits after a newer one would punch a hole the
// verifier must report as tampering; such an event waits for a later prune.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.withTx(ctx, "prune audit events", func(tx *sql.Tx) error {
		var firstKept sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT min(seq) FROM events WHERE time >= ?`, before.UnixNano()).Scan(&firstKept); err != nil {
			return fmt.Errorf("prune audit events: find first kept: %w", err)
		}
		var lastSeq int64
		var lastHash []byte
		q := `SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1`
		args := []any{}
		if firstKept.Valid {
			q = `SELECT seq, hash FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1`
			args = append(args, firstKept.Int64)
		}
		err := tx.QueryRowContext(ctx, q, args...).Scan(&lastSeq, &lastHash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // nothing old enough
		}
		if err != nil {
			return fmt.Errorf("prune audit events: find last pruned: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE seq <= ?`, lastSeq)
		if err != nil {
			return fmt.Errorf("prune audit events up to %d: %w", lastSeq, err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("prune audit events: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_anchor(id, seq, hash) VALUES (1, ?, ?)
			ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`, lastSeq, lastHash); err != nil {
			return fmt.Errorf("prune audit events: move anchor to %d: %w", lastSeq, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
