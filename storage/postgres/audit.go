package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const eventColumns = `seq, time_ns, type, actor, target, outcome, fields, prev_hash, hash`

// AppendEvents implements storage.AuditStore. The chain head row is locked
// FOR UPDATE for the whole transaction, so appends from any number of
// connections and bastions queue up and each sees the head the previous one
// committed: the chain stays gapless and linear. If the transaction fails
// nothing is stored and the head is unchanged.
//
// That row lock is the one point every bastion's audit writes pass through,
// so the transaction is cut to two round trips, BEGIN + lock in one batch
// and inserts + head update + COMMIT in the next, and everything that does
// not depend on the head (encoding) happens before the lock is taken.
func (s *Store) AppendEvents(ctx context.Context, evs []storage.Event, seal func(ev *storage.Event) []byte) ([]storage.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	out := make([]storage.Event, len(evs))
	copy(out, evs)
	fields := make([][]byte, len(out))
	for i := range out {
		ev := &out[i]
		// Seal over exactly what will be read back: UTC (the location is
		// not stored), no monotonic reading, text PostgreSQL can hold.
		ev.Time = ev.Time.UTC()
		ev.Type, ev.Actor, ev.Target, ev.Outcome = textSafe(ev.Type), textSafe(ev.Actor), textSafe(ev.Target), textSafe(ev.Outcome)
		var err error
		if fields[i], err = marshalNullable(ev.Fields, ev.Fields == nil); err != nil {
			return nil, fmt.Errorf("append audit events: encode fields of %s event: %w", ev.Type, err)
		}
		// Likewise the fields as they will be read back, not as given: JSON
		// turns ints into numbers and invalid UTF-8 into U+FFFD, and a hash
		// over the caller's original map would not re-verify.
		if ev.Fields, err = decodeFields(fields[i]); err != nil {
			return nil, fmt.Errorf("append audit events: re-read fields of %s event: %w", ev.Type, err)
		}
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("append %d audit events: acquire connection: %w", len(evs), err)
	}
	defer conn.Release()
	if err := appendLocked(ctx, conn.Conn(), out, fields, seal); err != nil {
		abortTx(ctx, conn.Conn())
		return nil, fmt.Errorf("append %d audit events: %w", len(evs), err)
	}
	return out, nil
}

// appendLocked numbers, seals and stores evs in one transaction on conn.
func appendLocked(ctx context.Context, conn *pgx.Conn, evs []storage.Event, fields [][]byte, seal func(ev *storage.Event) []byte) error {
	var seq int64
	var prev []byte
	lock := &pgx.Batch{}
	lock.Queue(`BEGIN`)
	lock.Queue(`SELECT seq, hash FROM audit_head WHERE id FOR UPDATE`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&seq, &prev)
	})
	if err := conn.SendBatch(ctx, lock).Close(); err != nil {
		return fmt.Errorf("lock audit chain head: %w", err)
	}
	first := seq + 1
	store := &pgx.Batch{}
	for i := range evs {
		ev := &evs[i]
		seq++
		ev.Seq = seq
		ev.PrevHash = prev
		ev.Hash = seal(ev)
		prev = ev.Hash
		store.Queue(`INSERT INTO audit_events (`+eventColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			ev.Seq, toNanos(ev.Time), ev.Type, ev.Actor, ev.Target, ev.Outcome, fields[i], ev.PrevHash, ev.Hash)
	}
	store.Queue(`UPDATE audit_head SET seq = $1, hash = $2 WHERE id`, seq, prev)
	store.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, store).Close(); err != nil {
		return fmt.Errorf("store audit events %d..%d: %w", first, seq, err)
	}
	return nil
}

// abortTx rolls back whatever transaction a failed batch left open on conn,
// so the connection goes back to the pool clean. If even that fails, the
// pool sees the connection is not idle and discards it on release.
func abortTx(ctx context.Context, conn *pgx.Conn) {
	if conn.IsClosed() || conn.PgConn().TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_, _ = conn.Exec(rctx, `ROLLBACK`)
}

// ListEvents implements storage.AuditStore. Since is inclusive, Until
// exclusive, so consecutive windows neither overlap nor leave gaps.
func (s *Store) ListEvents(ctx context.Context, f storage.EventFilter) ([]storage.Event, error) {
	var w where
	if f.Type != "" {
		w.add("type = $%[1]d", f.Type)
	}
	if f.TypePrefix != "" {
		w.add("type >= $%[1]d", f.TypePrefix)
		if end := storage.PrefixEnd(f.TypePrefix); end != "" {
			w.add("type < $%[1]d", end)
		}
	}
	if f.User != "" {
		w.add("(actor = $%[1]d OR target = $%[1]d)", f.User)
	}
	if !f.Since.IsZero() {
		w.add("time_ns >= $%[1]d", toNanos(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("time_ns < $%[1]d", toNanos(f.Until))
	}
	if f.After > 0 {
		w.add("seq > $%[1]d", f.After)
	}
	if f.Before > 0 {
		w.add("seq < $%[1]d", f.Before)
	}
	order := " ORDER BY seq"
	if f.Newest {
		order = " ORDER BY seq DESC"
	}
	q := `SELECT ` + eventColumns + ` FROM audit_events` + w.sql() + order
	q += w.limit(f.Limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	var evs []storage.Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return evs, nil
}

// WalkEvents implements storage.AuditStore. It reads the chain with one
// statement, so the walk sees one consistent snapshot even while other
// bastions append or prune.
func (s *Store) WalkEvents(ctx context.Context, fn func(storage.Event) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM audit_events ORDER BY seq`)
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

// AuditAnchor implements storage.AuditStore.
func (s *Store) AuditAnchor(ctx context.Context) (storage.Anchor, error) {
	var a storage.Anchor
	if err := s.pool.QueryRow(ctx, `SELECT anchor_seq, anchor_hash FROM audit_head WHERE id`).Scan(&a.Seq, &a.Hash); err != nil {
		return storage.Anchor{}, fmt.Errorf("read audit anchor: %w", err)
	}
	return a, nil
}

// PruneEvents implements storage.AuditStore. It deletes the longest prefix
// of the chain whose events are all older than before. Event times need not
// rise with Seq (bastion clocks differ), and deleting an old event that sits
// after a newer one would punch a hole the verifier cannot bridge, so such
// stragglers are kept until everything before them has also aged out.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Lock the head like an append does, so the anchor and the first
		// remaining event cannot be moved by a concurrent prune.
		var headSeq int64
		if err := tx.QueryRow(ctx, `SELECT seq FROM audit_head WHERE id FOR UPDATE`).Scan(&headSeq); err != nil {
			return fmt.Errorf("lock audit chain head: %w", err)
		}
		var keepFrom *int64
		if err := tx.QueryRow(ctx, `SELECT min(seq) FROM audit_events WHERE time_ns >= $1`, toNanos(before)).Scan(&keepFrom); err != nil {
			return fmt.Errorf("find first audit event to keep: %w", err)
		}
		cut := headSeq // nothing is new enough: every stored event goes
		if keepFrom != nil {
			cut = *keepFrom - 1
		}
		var lastSeq *int64
		var lastHash []byte
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_events WHERE seq <= $1 ORDER BY seq DESC LIMIT 1`, cut).Scan(&lastSeq, &lastHash)
		if err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // nothing old enough to delete
			}
			return fmt.Errorf("find last audit event to prune: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE seq <= $1`, *lastSeq)
		if err != nil {
			return fmt.Errorf("delete audit events up to %d: %w", *lastSeq, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE audit_head SET anchor_seq = $1, anchor_hash = $2 WHERE id`, *lastSeq, lastHash); err != nil {
			return fmt.Errorf("move audit anchor to %d: %w", *lastSeq, err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit events before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

func scanEvent(rows pgx.Rows) (storage.Event, error) {
	var ev storage.Event
	var ns int64
	var fields []byte
	if err := rows.Scan(&ev.Seq, &ns, &ev.Type, &ev.Actor, &ev.Target, &ev.Outcome, &fields, &ev.PrevHash, &ev.Hash); err != nil {
		return storage.Event{}, fmt.Errorf("scan audit event: %w", err)
	}
	ev.Time = fromNanos(ns)
	var err error
	if ev.Fields, err = decodeFields(fields); err != nil {
		return storage.Event{}, fmt.Errorf("decode fields of audit event %d: %w", ev.Seq, err)
	}
	return ev, nil
}

// decodeFields reads stored event fields. Numbers become json.Number, not
// float64, so integers above 2^53 re-encode to the digits that were sealed.
func decodeFields(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// textSafe makes s storable in a PostgreSQL text column, which rejects
// invalid UTF-8 and NUL bytes. Audit strings are often attacker-chosen (a
// login name, a command), and an event that cannot be stored must not make
// auditing fail, so the bytes PostgreSQL cannot hold become U+FFFD before
// the event is sealed; the hash then covers exactly what is stored.
func textSafe(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// marshalNullable encodes v as JSON, or as SQL NULL when isNil, so that a
// nil map or slice and an empty one each survive the round trip as itself.
func marshalNullable(v any, isNil bool) ([]byte, error) {
	if isNil {
		return nil, nil
	}
	return json.Marshal(v)
}
