package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const requestColumns = `id, user_name, roles, reason, duration_ns, state, created_ns, expires_ns,
	grant_start_ns, grant_end_ns, reviews, state_reason, state_by, updated_ns, requested, node, login, for_session,
	session_id, labels`

// CreateRequest implements storage.AccessStore; a duplicate id is
// storage.ErrConflict.
func (s *Store) CreateRequest(ctx context.Context, r storage.Request) error {
	reviews, err := marshalNullable(r.Reviews, r.Reviews == nil)
	if err != nil {
		return fmt.Errorf("create request %q: encode reviews: %w", r.ID, err)
	}
	labels, err := marshalNullable(r.Labels, len(r.Labels) == 0)
	if err != nil {
		return fmt.Errorf("create request %q: encode labels: %w", r.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO access_requests (`+requestColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		r.ID, r.User, r.Roles, r.Reason, int64(r.Duration), r.State, toNanos(r.Created), toNanos(r.Expires),
		toNanosPtr(r.GrantStart), toNanosPtr(r.GrantEnd), reviews, r.StateReason, r.StateBy, toNanos(r.Updated),
		r.Requested, r.Node, r.Login, r.ForSession, r.Session, labels)
	if isUniqueViolation(err) {
		return fmt.Errorf("create request %q: %w", r.ID, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create request %q: %w", r.ID, err)
	}
	return nil
}

// GetRequest implements storage.AccessStore.
func (s *Store) GetRequest(ctx context.Context, id string) (storage.Request, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+requestColumns+` FROM access_requests WHERE id = $1`, id)
	if err != nil {
		return storage.Request{}, fmt.Errorf("get request %q: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRequest)
	if err != nil {
		return storage.Request{}, fmt.Errorf("get request %q: %w", id, notFound(err))
	}
	return r, nil
}

// ListRequests implements storage.AccessStore, newest first.
func (s *Store) ListRequests(ctx context.Context, f storage.RequestFilter) ([]storage.Request, error) {
	var w where
	if f.User != "" {
		w.add("user_name = $%[1]d", f.User)
	}
	if len(f.States) > 0 {
		w.add("state = ANY($%[1]d)", f.States)
	}
	q := `SELECT ` + requestColumns + ` FROM access_requests` + w.sql() + ` ORDER BY created_ns DESC, id DESC`
	q += w.limit(f.Limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanRequest)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// UpdateRequest implements storage.AccessStore. SELECT ... FOR UPDATE holds
// the row lock until commit, so two approvers on two bastions reviewing the
// same request run fn one after the other and the second sees the first's
// review. The id is not changeable through fn.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(r *storage.Request) error) (storage.Request, error) {
	var out storage.Request
	var fnErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+requestColumns+` FROM access_requests WHERE id = $1 FOR UPDATE`, id)
		if err != nil {
			return err
		}
		r, err := pgx.CollectExactlyOneRow(rows, scanRequest)
		if err != nil {
			return notFound(err)
		}
		if err := fn(&r); err != nil {
			// Kept apart so it reaches the caller unwrapped, as documented.
			fnErr = err
			return err
		}
		r.ID = id
		reviews, err := marshalNullable(r.Reviews, r.Reviews == nil)
		if err != nil {
			return fmt.Errorf("encode reviews: %w", err)
		}
		labels, err := marshalNullable(r.Labels, len(r.Labels) == 0)
		if err != nil {
			return fmt.Errorf("encode labels: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE access_requests SET user_name = $2, roles = $3, reason = $4, duration_ns = $5,
			state = $6, created_ns = $7, expires_ns = $8, grant_start_ns = $9, grant_end_ns = $10, reviews = $11,
			state_reason = $12, state_by = $13, updated_ns = $14, requested = $15, node = $16, login = $17,
			for_session = $18, session_id = $19, labels = $20 WHERE id = $1`,
			r.ID, r.User, r.Roles, r.Reason, int64(r.Duration), r.State, toNanos(r.Created), toNanos(r.Expires),
			toNanosPtr(r.GrantStart), toNanosPtr(r.GrantEnd), reviews, r.StateReason, r.StateBy, toNanos(r.Updated),
			r.Requested, r.Node, r.Login, r.ForSession, r.Session, labels)
		if err != nil {
			return err
		}
		out = r
		return nil
	})
	if fnErr != nil {
		return storage.Request{}, fnErr
	}
	if err != nil {
		return storage.Request{}, fmt.Errorf("update request %q: %w", id, err)
	}
	return out, nil
}

// ActiveGrants implements storage.AccessStore.
func (s *Store) ActiveGrants(ctx context.Context, user string, now time.Time) ([]storage.Request, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+requestColumns+` FROM access_requests
		WHERE user_name = $1 AND state = $2 AND grant_start_ns <= $3 AND grant_end_ns > $3
		ORDER BY created_ns DESC, id DESC`, user, storage.StateApproved, toNanos(now))
	if err != nil {
		return nil, fmt.Errorf("list active grants of %q: %w", user, err)
	}
	out, err := pgx.CollectRows(rows, scanRequest)
	if err != nil {
		return nil, fmt.Errorf("list active grants of %q: %w", user, err)
	}
	return out, nil
}

func scanRequest(row pgx.CollectableRow) (storage.Request, error) {
	var r storage.Request
	var duration, created, expires, updated int64
	var grantStart, grantEnd *int64
	var reviews, labels []byte
	err := row.Scan(&r.ID, &r.User, &r.Roles, &r.Reason, &duration, &r.State, &created, &expires,
		&grantStart, &grantEnd, &reviews, &r.StateReason, &r.StateBy, &updated, &r.Requested, &r.Node, &r.Login,
		&r.ForSession, &r.Session, &labels)
	if err != nil {
		return storage.Request{}, err
	}
	if labels != nil {
		if err := json.Unmarshal(labels, &r.Labels); err != nil {
			return storage.Request{}, fmt.Errorf("decode labels of request %q: %w", r.ID, err)
		}
	}
	r.Duration = time.Duration(duration)
	r.Created = fromNanos(created)
	r.Expires = fromNanos(expires)
	r.Updated = fromNanos(updated)
	r.GrantStart = fromNanosPtr(grantStart)
	r.GrantEnd = fromNanosPtr(grantEnd)
	if reviews != nil {
		if err := json.Unmarshal(reviews, &r.Reviews); err != nil {
			return storage.Request{}, fmt.Errorf("decode reviews of request %q: %w", r.ID, err)
		}
		// JSON keeps the writer's zone offset; hand out UTC like every
		// other time this backend returns.
		for i := range r.Reviews {
			r.Reviews[i].Time = r.Reviews[i].Time.UTC()
		}
	}
	return r, nil
}
