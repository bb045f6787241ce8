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

const sessionCols = `id, user, login, node, kind, command, roles, request_ids, client_addr, bastion, recording,
	start, end_time, status, exit_status, bytes_in, bytes_out`

// CreateSession implements storage.SessionStore.
func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	roles, err := encJSON(ss.Roles, len(ss.Roles) == 0)
	if err != nil {
		return fmt.Errorf("create session %s: encode roles: %w", ss.ID, err)
	}
	reqs, err := encJSON(ss.RequestIDs, len(ss.RequestIDs) == 0)
	if err != nil {
		return fmt.Errorf("create session %s: encode request ids: %w", ss.ID, err)
	}
	var exit any
	if ss.ExitStatus != nil {
		exit = *ss.ExitStatus
	}
	// Durable with the session.start append that follows (see execSoon).
	_, err = s.execSoon(ctx, `INSERT INTO sessions(`+sessionCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		ss.ID, ss.User, ss.Login, ss.Node, ss.Kind, ss.Command, roles, reqs, ss.ClientAddr, ss.Bastion, ss.Recording,
		ns(ss.Start), nsPtr(ss.End), ss.Status, exit, ss.BytesIn, ss.BytesOut)
	if isUnique(err) {
		return fmt.Errorf("create session %s: %w", ss.ID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create session %s: %w", ss.ID, err)
	}
	return nil
}

// EndSession implements storage.SessionStore.
func (s *Store) EndSession(ctx context.Context, id string, end time.Time, status string, exit *int, bytesIn, bytesOut int64) error {
	var ex any
	if exit != nil {
		ex = *exit
	}
	// Durable with the session.end append that follows (see execSoon).
	res, err := s.execSoon(ctx, `UPDATE sessions SET end_time = ?, status = ?, exit_status = ?, bytes_in = ?, bytes_out = ? WHERE id = ?`,
		ns(end), status, ex, bytesIn, bytesOut, id)
	if err != nil {
		return fmt.Errorf("end session %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("end session %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("end session %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

// GetSession implements storage.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id)
	if err != nil {
		return storage.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return storage.Session{}, fmt.Errorf("get session %s: %w", id, err)
		}
		return storage.Session{}, fmt.Errorf("get session %s: %w", id, storage.ErrNotFound)
	}
	ss, err := scanSession(rows)
	if err != nil {
		return storage.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return ss, nil
}

func scanSession(rows *sql.Rows) (storage.Session, error) {
	var ss storage.Session
	var roles, reqs sql.NullString
	var start, end, exit sql.NullInt64
	if err := rows.Scan(&ss.ID, &ss.User, &ss.Login, &ss.Node, &ss.Kind, &ss.Command, &roles, &reqs, &ss.ClientAddr,
		&ss.Bastion, &ss.Recording, &start, &end, &ss.Status, &exit, &ss.BytesIn, &ss.BytesOut); err != nil {
		return ss, fmt.Errorf("scan session: %w", err)
	}
	if err := decJSON(roles, &ss.Roles); err != nil {
		return ss, fmt.Errorf("decode roles of session %s: %w", ss.ID, err)
	}
	if err := decJSON(reqs, &ss.RequestIDs); err != nil {
		return ss, fmt.Errorf("decode request ids of session %s: %w", ss.ID, err)
	}
	ss.Start = fromNS(start)
	ss.End = fromNSPtr(end)
	if exit.Valid {
		v := int(exit.Int64)
		ss.ExitStatus = &v
	}
	return ss, nil
}

// ListSessions implements storage.SessionStore.
func (s *Store) ListSessions(ctx context.Context, f storage.SessionFilter) ([]storage.Session, error) {
	var where []string
	var args []any
	if f.User != "" {
		where = append(where, "user = ?")
		args = append(args, f.User)
	}
	if f.Node != "" {
		where = append(where, "node = ?")
		args = append(args, f.Node)
	}
	if !f.Since.IsZero() {
		where = append(where, "start >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	}
	q := `SELECT ` + sessionCols + ` FROM sessions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY start DESC, id DESC" + limitClause(f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []storage.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// MarkInterrupted implements storage.SessionStore.
func (s *Store) MarkInterrupted(ctx context.Context, bastion string, at time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE sessions SET status = 'interrupted', end_time = ? WHERE bastion = ? AND status = 'live'`,
		ns(at), bastion)
	if err != nil {
		return 0, fmt.Errorf("mark sessions of bastion %s interrupted: %w", bastion, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mark sessions of bastion %s interrupted: %w", bastion, err)
	}
	return int(n), nil
}

// errNoRow maps sql.ErrNoRows to storage.ErrNotFound.
func errNoRow(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}
