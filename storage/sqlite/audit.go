package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const eventCols = `seq, time, type, actor, target, outcome, fields, prev_hash, hash`

// maxInsert is the most rows one INSERT carries (9 parameters each, well
// under SQLite's 32,766-parameter limit). A batch is cut into statements of
// maxInsert rows and then one each of the powers of two below it that make
// up the rest, so there are at most eight statement texts whatever the
// batch size: few enough for the driver's statement cache to keep them all
// (the exec path uses it, an explicit Prepare does not), and at most
// log2(maxInsert)+1 executions per batch. One statement for many rows costs
// far fewer cgo round trips than one per event, and the writer is the
// bottleneck of group commit.
const maxInsert = 128

func insertEvents(n int) string {
	return `INSERT INTO events(` + eventCols + `) VALUES (?,?,?,?,?,?,?,?,?)` + strings.Repeat(`,(?,?,?,?,?,?,?,?,?)`, n-1)
}

// AppendEvents implements storage.AuditStore. The write transaction is
// BEGIN IMMEDIATE, so the read of the chain head and the inserts cannot
// interleave with another appender in this or any other process.
func (s *Store) AppendEvents(ctx context.Context, evs []storage.Event, seal func(ev *storage.Event) []byte) ([]storage.Event, error) {
	// Encode fields before taking the lock: it is the slow part.
	fields := make([]any, len(evs))
	for i := range evs {
		f, err := encFields(evs[i].Fields)
		if err != nil {
			return nil, fmt.Errorf("append audit events: encode fields of %s event: %w", evs[i].Type, err)
		}
		fields[i] = f
	}
	return s.appendEvents(ctx, evs, fields, seal)
}

// AppendEncodedEvents is AppendEvents for a caller that already holds each
// event's fields as the canonical JSON it seals them with (package audit's
// Log): fields[i] is stored as is, nil as NULL, and evs[i].Fields is not
// encoded again. Storing the sealed text itself also means a verifier
// hashing the stored text (WalkEventsRaw) sees exactly what was sealed.
func (s *Store) AppendEncodedEvents(ctx context.Context, evs []storage.Event, fields [][]byte, seal func(ev *storage.Event) []byte) ([]storage.Event, error) {
	if len(fields) != len(evs) {
		return nil, fmt.Errorf("append audit events: %d fields for %d events", len(fields), len(evs))
	}
	enc := make([]any, len(evs))
	for i, f := range fields {
		if f != nil {
			enc[i] = string(f) // TEXT like encFields, not a BLOB
		}
	}
	return s.appendEvents(ctx, evs, enc, seal)
}

// appendEvents numbers, seals and inserts evs with their encoded fields
// (string or nil) in one write transaction.
func (s *Store) appendEvents(ctx context.Context, evs []storage.Event, fields []any, seal func(ev *storage.Event) []byte) ([]storage.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	out := make([]storage.Event, len(evs))
	copy(out, evs)
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
		args := make([]any, 0, 9*maxInsert)
		for start, size := 0, 0; start < len(out); start += size {
			size = insertSize(len(out) - start)
			args = args[:0]
			for i := start; i < start+size; i++ {
				ev := &out[i]
				args = append(args, ev.Seq, ev.Time.UnixNano(), ev.Type, ev.Actor, ev.Target, ev.Outcome, fields[i], ev.PrevHash, ev.Hash)
			}
			if err := insert(ctx, tx, insertEvents(size), args); err != nil {
				return fmt.Errorf("append audit events %d to %d: %w", out[start].Seq, out[start+size-1].Seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insert runs an INSERT through QueryContext rather than ExecContext: on
// that path the driver binds every argument and steps in a single cgo call,
// on the other it makes one call per argument, which was a sixth of the
// writer's time at nine arguments per event. Draining the (empty) result
// makes sure the statement ran to completion whether or not the driver
// steps before the first Next.
func insert(ctx context.Context, tx *sql.Tx, q string, args []any) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		// An INSERT has no rows; Next only makes it run to the end.
	}
	return errors.Join(rows.Err(), rows.Close())
}

// insertSize is how many of n remaining rows the next INSERT takes:
// maxInsert, or the largest power of two not above n.
func insertSize(n int) int {
	if n >= maxInsert {
		return maxInsert
	}
	return 1 << (bits.Len(uint(n)) - 1)
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
	if f.TypePrefix != "" {
		where = append(where, "type >= ?")
		args = append(args, f.TypePrefix)
		if end := storage.PrefixEnd(f.TypePrefix); end != "" {
			where = append(where, "type < ?")
			args = append(args, end)
		}
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
	if f.Before > 0 {
		where = append(where, "seq < ?")
		args = append(args, f.Before)
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

// WalkEventsRaw is WalkEvents for verifiers. It visits the events with
// from <= seq <= to (to <= 0: no upper bound) in seq order, handing fn each
// one as stored: seq, time in Unix nanoseconds, and the bytes of type,
// actor, target, outcome, fields (nil when NULL), prev_hash and hash, valid
// only during the call. Package audit uses it when present: it hashes the
// stored bytes without decoding anything, and walks several ranges on
// separate connections at once. Each call reads one snapshot.
//
// The events are fetched in chunks, one SQL row per chunk (rawChunkQuery)
// rather than one per event: per event, database/sql and the driver cost
// a cgo step, an allocation and a conversion for each of nine columns,
// which was most of the time Verify took. Should a chunk not parse as
// expected (a time that is not an integer, a value longer than a code point
// can count) or outgrow SQLite's string limit, the rest of it is read row
// by row, so what fn sees does not depend on the path taken.
func (s *Store) WalkEventsRaw(ctx context.Context, from, to int64, fn func(seq, unixNano int64, typ, actor, target, outcome, fields, prevHash, hash []byte) error) error {
	if to <= 0 {
		to = math.MaxInt64
	}
	var fnErr error
	err := s.walkRaw(ctx, from, to, func(seq, unixNano int64, typ, actor, target, outcome, fields, prevHash, hash []byte) error {
		if fnErr = fn(seq, unixNano, typ, actor, target, outcome, fields, prevHash, hash); fnErr != nil {
			return errStopWalk
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("walk audit events %d to %d: %w", from, to, err)
	}
	return nil
}

// rawFunc is the callback of WalkEventsRaw.
type rawFunc = func(seq, unixNano int64, typ, actor, target, outcome, fields, prevHash, hash []byte) error

// errStopWalk ends a raw walk when the callback failed.
var errStopWalk = errors.New("stop walking")

// rawChunkQuery selects the events with seq in [?1, ?2] as one blob. Each
// event is seq and time in decimal, each followed by a space, then the byte
// lengths of type, actor, target, outcome, fields (plus one, 0 standing for
// NULL), prev_hash and hash as seven code points in UTF-8 (char(); NULL
// reads as 0 and lengths over U+10FFFF as U+FFFD, which splitEvent
// refuses), then those seven values' bytes back to back. The lengths make
// the split unambiguous whatever bytes the values hold; as code points they
// cost SQLite one function call, not seven numbers to format. The events
// come in rowid order, the order of the range scan; walkChunk checks that
// rather than pay for a sort.
const rawChunkQuery = `SELECT CAST(group_concat(concat(seq, ' ', time, ' ',
		char(octet_length(type), octet_length(actor), octet_length(target), octet_length(outcome),
			octet_length(fields) + 1, octet_length(prev_hash), octet_length(hash)),
		type, actor, target, outcome, fields, prev_hash, hash), '') AS BLOB)
	FROM events WHERE seq BETWEEN ?1 AND ?2`

// rawRowsQuery is the row-by-row fallback for the same events.
const rawRowsQuery = `SELECT ` + eventCols + ` FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq`

// A chunk spans rawChunkMax sequence numbers at most, fewer while the
// events are large, so that one chunk stays near rawChunkBytes.
const (
	rawChunkMax   = 4096
	rawChunkMin   = 16
	rawChunkBytes = 1 << 20
)

func (s *Store) walkRaw(ctx context.Context, from, to int64, fn rawFunc) error {
	// One read transaction: all chunks see the same snapshot.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	// Stop at the newest event, or an open-ended walk would step through
	// empty ranges for ever.
	var newest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM events`).Scan(&newest); err != nil {
		return err
	}
	if !newest.Valid {
		return nil
	}
	to = min(to, newest.Int64)
	chunk, err := tx.PrepareContext(ctx, rawChunkQuery)
	if err != nil {
		return err
	}
	defer chunk.Close()
	span := int64(rawChunkMax)
	for lo := from; lo <= to; {
		hi := to
		if to-lo >= span {
			hi = lo + span - 1
		}
		last, size, err := walkChunk(ctx, chunk, lo, hi, fn)
		var se sqlite3.Error
		switch {
		case errors.As(err, &se) && se.Code == sqlite3.ErrTooBig:
			// Larger than SQLite's string limit: these rows one by one.
			last, err = lo-1, errIncomplete
		case err != nil && !errors.Is(err, errIncomplete):
			return err
		}
		if err != nil {
			if err := walkRows(ctx, tx, last+1, hi, fn); err != nil {
				return err
			}
		}
		if hi == to {
			return nil
		}
		lo = hi + 1
		switch {
		case size > rawChunkBytes:
			span = max(rawChunkMin, span/2)
		case size < rawChunkBytes/4:
			span = min(rawChunkMax, span*2)
		}
	}
	return nil
}

// errIncomplete: a chunk did not parse to its end; the events after the
// last one handed out are to be read row by row.
var errIncomplete = errors.New("chunk not parsed to its end")

// walkChunk reads the events from..to as one chunk and hands them to fn. It
// returns the last seq handed out and the blob's size; errIncomplete if the
// blob did not parse as expected to its end.
func walkChunk(ctx context.Context, chunk *sql.Stmt, from, to int64, fn rawFunc) (last int64, size int, err error) {
	rows, err := chunk.QueryContext(ctx, from, to)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var blob sql.RawBytes
	if rows.Next() {
		if err := rows.Scan(&blob); err != nil {
			return 0, 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	last = from - 1
	for p := blob; len(p) > 0; {
		var ev [7][]byte
		seq, t, rest, ok := splitEvent(p, &ev)
		if !ok || seq <= last || seq > to {
			return last, len(blob), errIncomplete
		}
		if err := fn(seq, t, ev[0], ev[1], ev[2], ev[3], ev[4], ev[5], ev[6]); err != nil {
			return 0, 0, err
		}
		p, last = rest, seq
	}
	return last, len(blob), nil
}

// splitEvent takes the first event off a chunk blob: its seq and time, and
// the seven values (nil for NULL fields) into ev.
func splitEvent(p []byte, ev *[7][]byte) (seq, unixNano int64, rest []byte, ok bool) {
	if seq, p, ok = parseInt(p); !ok {
		return 0, 0, nil, false
	}
	if unixNano, p, ok = parseInt(p); !ok {
		return 0, 0, nil, false
	}
	var lens [7]int
	for i := range lens {
		r, size := utf8.DecodeRune(p)
		if r == utf8.RuneError { // invalid, or a length char() could not encode
			return 0, 0, nil, false
		}
		lens[i], p = int(r), p[size:]
	}
	for i, l := range lens {
		if i == 4 { // fields: length plus one
			if l == 0 {
				continue // NULL
			}
			l--
		}
		if l > len(p) {
			return 0, 0, nil, false
		}
		ev[i], p = p[:l:l], p[l:]
	}
	return seq, unixNano, p, true
}

// parseInt reads a space-terminated decimal integer.
func parseInt(p []byte) (int64, []byte, bool) {
	neg := len(p) > 0 && p[0] == '-'
	if neg {
		p = p[1:]
	}
	j, v := 0, uint64(0)
	for ; j < len(p) && j < 19 && '0' <= p[j] && p[j] <= '9'; j++ {
		v = v*10 + uint64(p[j]-'0')
	}
	if j == 0 || j >= len(p) || p[j] != ' ' || v > math.MaxInt64 {
		return 0, p, false
	}
	if neg {
		return -int64(v), p[j+1:], true
	}
	return int64(v), p[j+1:], true
}

// walkRows hands the events from..to to fn, one row each.
func walkRows(ctx context.Context, tx *sql.Tx, from, to int64, fn rawFunc) error {
	rows, err := tx.QueryContext(ctx, rawRowsQuery, from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq, t int64
		var typ, actor, target, outcome, prev, hash []byte
		var fields sql.Null[[]byte]
		if err := rows.Scan(&seq, &t, &typ, &actor, &target, &outcome, &fields, &prev, &hash); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if fields.Valid && fields.V == nil {
			fields.V = []byte{} // '' is not NULL
		}
		if err := fn(seq, t, typ, actor, target, outcome, fields.V, prev, hash); err != nil {
			return err
		}
	}
	return rows.Err()
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
