package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const requestCols = `id, user, roles, reason, duration, state, created, expires, grant_start, grant_end, reviews,
	state_reason, state_by, updated, requested, node, login, for_session, session_id, labels`

func requestArgs(r storage.Request) ([]any, error) {
	roles, err := encJSON(r.Roles, len(r.Roles) == 0)
	if err != nil {
		return nil, fmt.Errorf("encode roles: %w", err)
	}
	reviews, err := encJSON(r.Reviews, len(r.Reviews) == 0)
	if err != nil {
		return nil, fmt.Errorf("encode reviews: %w", err)
	}
	requested, err := encJSON(r.Requested, len(r.Requested) == 0)
	if err != nil {
		return nil, fmt.Errorf("encode requested roles: %w", err)
	}
	labels, err := encJSON(r.Labels, len(r.Labels) == 0)
	if err != nil {
		return nil, fmt.Errorf("encode labels: %w", err)
	}
	return []any{r.ID, r.User, roles, r.Reason, int64(r.Duration), r.State, ns(r.Created), ns(r.Expires),
		nsPtr(r.GrantStart), nsPtr(r.GrantEnd), reviews, r.StateReason, r.StateBy, ns(r.Updated),
		requested, r.Node, r.Login, r.ForSession, r.Session, labels}, nil
}

// CreateRequest implements storage.AccessStore.
func (s *Store) CreateRequest(ctx context.Context, r storage.Request) error {
	args, err := requestArgs(r)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO requests(`+requestCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
	if isUnique(err) {
		return fmt.Errorf("create request %s: %w", r.ID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	return nil
}

type rowScanner interface{ Scan(dest ...any) error }

func scanRequest(sc rowScanner) (storage.Request, error) {
	var r storage.Request
	var roles, reviews, requested, labels sql.NullString
	var dur int64
	var created, expires, gs, ge, updated sql.NullInt64
	if err := sc.Scan(&r.ID, &r.User, &roles, &r.Reason, &dur, &r.State, &created, &expires, &gs, &ge, &reviews,
		&r.StateReason, &r.StateBy, &updated, &requested, &r.Node, &r.Login, &r.ForSession, &r.Session, &labels); err != nil {
		return r, err
	}
	if err := decJSON(labels, &r.Labels); err != nil {
		return r, fmt.Errorf("decode labels of request %s: %w", r.ID, err)
	}
	if err := decJSON(requested, &r.Requested); err != nil {
		return r, fmt.Errorf("decode requested roles of request %s: %w", r.ID, err)
	}
	if err := decJSON(roles, &r.Roles); err != nil {
		return r, fmt.Errorf("decode roles of request %s: %w", r.ID, err)
	}
	if err := decJSON(reviews, &r.Reviews); err != nil {
		return r, fmt.Errorf("decode reviews of request %s: %w", r.ID, err)
	}
	r.Duration = time.Duration(dur)
	r.Created = fromNS(created)
	r.Expires = fromNS(expires)
	r.GrantStart = fromNSPtr(gs)
	r.GrantEnd = fromNSPtr(ge)
	r.Updated = fromNS(updated)
	for i := range r.Reviews {
		r.Reviews[i].Time = r.Reviews[i].Time.UTC()
	}
	return r, nil
}

// GetRequest implements storage.AccessStore.
func (s *Store) GetRequest(ctx context.Context, id string) (storage.Request, error) {
	r, err := scanRequest(s.r.QueryRowContext(ctx, `SELECT `+requestCols+` FROM requests WHERE id = ?`, id))
	if err != nil {
		return storage.Request{}, fmt.Errorf("get request %s: %w", id, errNoRow(err))
	}
	return r, nil
}

// ListRequests implements storage.AccessStore.
func (s *Store) ListRequests(ctx context.Context, f storage.RequestFilter) ([]storage.Request, error) {
	var where []string
	var args []any
	if f.User != "" {
		where = append(where, "user = ?")
		args = append(args, f.User)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(",?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	q := `SELECT ` + requestCols + ` FROM requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created DESC, id DESC" + limitClause(f.Limit)
	return s.queryRequests(ctx, "list requests", q, args...)
}

func (s *Store) queryRequests(ctx context.Context, what, q string, args ...any) ([]storage.Request, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []storage.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// UpdateRequest implements storage.AccessStore. The whole read-modify-write
// runs in one BEGIN IMMEDIATE transaction, so two reviewers approving at the
// same moment both see each other's review instead of one overwriting it.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(r *storage.Request) error) (storage.Request, error) {
	var out storage.Request
	err := s.withTx(ctx, "update request "+id, func(tx *sql.Tx) error {
		r, err := scanRequest(tx.QueryRowContext(ctx, `SELECT `+requestCols+` FROM requests WHERE id = ?`, id))
		if err != nil {
			return fmt.Errorf("update request %s: %w", id, errNoRow(err))
		}
		if err := fn(&r); err != nil {
			return err
		}
		r.ID = id // the key is not fn's to change
		args, err := requestArgs(r)
		if err != nil {
			return fmt.Errorf("update request %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET user = ?, roles = ?, reason = ?, duration = ?, state = ?,
			created = ?, expires = ?, grant_start = ?, grant_end = ?, reviews = ?, state_reason = ?, state_by = ?,
			updated = ?, requested = ?, node = ?, login = ?, for_session = ?, session_id = ?, labels = ? WHERE id = ?`, append(args[1:], id)...); err != nil {
			return fmt.Errorf("update request %s: %w", id, err)
		}
		out = r
		return nil
	})
	if err != nil {
		return storage.Request{}, err
	}
	// Re-normalise through the same encoding readers see.
	out.Created, out.Expires, out.Updated = roundNS(out.Created), roundNS(out.Expires), roundNS(out.Updated)
	out.GrantStart, out.GrantEnd = roundNSPtr(out.GrantStart), roundNSPtr(out.GrantEnd)
	return out, nil
}

func roundNS(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

func roundNSPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := roundNS(*t)
	return &v
}

// ActiveGrants implements storage.AccessStore.
func (s *Store) ActiveGrants(ctx context.Context, user string, now time.Time) ([]storage.Request, error) {
	n := now.UnixNano()
	return s.queryRequests(ctx, "active grants of "+user,
		`SELECT `+requestCols+` FROM requests WHERE user = ? AND state = ? AND grant_end > ? AND grant_start <= ?
		ORDER BY grant_end, id`, user, storage.StateApproved, n, n)
}
