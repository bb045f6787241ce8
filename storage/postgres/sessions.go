package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const sessionColumns = `id, user_name, login, node, kind, command, roles, request_ids, client_addr,
	bastion, recording, start_ns, end_ns, status, exit_status, bytes_in, bytes_out`

// CreateSession implements storage.SessionStore; a duplicate id is
// storage.ErrConflict.
func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		ss.ID, ss.User, ss.Login, ss.Node, ss.Kind, ss.Command, ss.Roles, ss.RequestIDs, ss.ClientAddr,
		ss.Bastion, ss.Recording, toNanos(ss.Start), toNanosPtr(ss.End), ss.Status, ss.ExitStatus, ss.BytesIn, ss.BytesOut)
	if isUniqueViolation(err) {
		return fmt.Errorf("create session %q: %w", ss.ID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create session %q: %w", ss.ID, err)
	}
	return nil
}

// EndSession implements storage.SessionStore; an unknown id is
// storage.ErrNotFound.
func (s *Store) EndSession(ctx context.Context, id string, end time.Time, status string, exit *int, bytesIn, bytesOut int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions
		SET end_ns = $2, status = $3, exit_status = $4, bytes_in = $5, bytes_out = $6
		WHERE id = $1`, id, toNanos(end), status, exit, bytesIn, bytesOut)
	if err != nil {
		return fmt.Errorf("end session %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("end session %q: %w", id, storage.ErrNotFound)
	}
	return nil
}

// GetSession implements storage.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id)
	if err != nil {
		return storage.Session{}, fmt.Errorf("get session %q: %w", id, err)
	}
	ss, err := pgx.CollectExactlyOneRow(rows, scanSession)
	if err != nil {
		return storage.Session{}, fmt.Errorf("get session %q: %w", id, notFound(err))
	}
	return ss, nil
}

// ListSessions implements storage.SessionStore, newest first.
func (s *Store) ListSessions(ctx context.Context, f storage.SessionFilter) ([]storage.Session, error) {
	var w where
	if f.User != "" {
		w.add("user_name = $%[1]d", f.User)
	}
	if f.Node != "" {
		w.add("node = $%[1]d", f.Node)
	}
	if !f.Since.IsZero() {
		w.add("start_ns >= $%[1]d", toNanos(f.Since))
	}
	if f.Status != "" {
		w.add("status = $%[1]d", f.Status)
	}
	q := `SELECT ` + sessionColumns + ` FROM sessions` + w.sql() + ` ORDER BY start_ns DESC, id DESC`
	q += w.limit(f.Limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSession)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// MarkInterrupted implements storage.SessionStore.
func (s *Store) MarkInterrupted(ctx context.Context, bastion string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET status = 'interrupted', end_ns = $2
		WHERE bastion = $1 AND status = 'live'`, bastion, toNanos(at))
	if err != nil {
		return 0, fmt.Errorf("mark live sessions of bastion %q interrupted: %w", bastion, err)
	}
	return int(tag.RowsAffected()), nil
}

func scanSession(row pgx.CollectableRow) (storage.Session, error) {
	var ss storage.Session
	var start int64
	var end *int64
	err := row.Scan(&ss.ID, &ss.User, &ss.Login, &ss.Node, &ss.Kind, &ss.Command, &ss.Roles, &ss.RequestIDs, &ss.ClientAddr,
		&ss.Bastion, &ss.Recording, &start, &end, &ss.Status, &ss.ExitStatus, &ss.BytesIn, &ss.BytesOut)
	if err != nil {
		return storage.Session{}, err
	}
	ss.Start = fromNanos(start)
	ss.End = fromNanosPtr(end)
	return ss, nil
}
