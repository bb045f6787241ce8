package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// PutLock implements storage.LockStore. A user has at most one lock, so a
// new lock replaces the old one (e.g. to extend or shorten it).
func (s *Store) PutLock(ctx context.Context, l storage.Lock) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO locks (user_name, reason, by_name, created_ns, expires_ns)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_name) DO UPDATE SET reason = EXCLUDED.reason, by_name = EXCLUDED.by_name,
			created_ns = EXCLUDED.created_ns, expires_ns = EXCLUDED.expires_ns`,
		l.User, l.Reason, l.By, toNanos(l.Created), toNanosPtr(l.Expires))
	if err != nil {
		return fmt.Errorf("lock user %q: %w", l.User, err)
	}
	return nil
}

// DeleteLock implements storage.LockStore; storage.ErrNotFound when user
// has no lock, so "unlock" can tell the operator nothing was locked.
func (s *Store) DeleteLock(ctx context.Context, user string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM locks WHERE user_name = $1`, user)
	if err != nil {
		return fmt.Errorf("unlock user %q: %w", user, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("unlock user %q: %w", user, storage.ErrNotFound)
	}
	return nil
}

// ActiveLock implements storage.LockStore. A lock is in force from the
// moment it is stored (Created is informational) until Expires, if set.
func (s *Store) ActiveLock(ctx context.Context, user string, now time.Time) (storage.Lock, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_name, reason, by_name, created_ns, expires_ns FROM locks
		WHERE user_name = $1 AND (expires_ns IS NULL OR expires_ns > $2)`, user, toNanos(now))
	if err != nil {
		return storage.Lock{}, fmt.Errorf("read lock of %q: %w", user, err)
	}
	l, err := pgx.CollectExactlyOneRow(rows, scanLock)
	if err != nil {
		return storage.Lock{}, fmt.Errorf("read lock of %q: %w", user, notFound(err))
	}
	return l, nil
}

// ListLocks implements storage.LockStore: the locks in force at now, by user.
func (s *Store) ListLocks(ctx context.Context, now time.Time) ([]storage.Lock, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_name, reason, by_name, created_ns, expires_ns FROM locks
		WHERE expires_ns IS NULL OR expires_ns > $1 ORDER BY user_name`, toNanos(now))
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanLock)
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return out, nil
}

func scanLock(row pgx.CollectableRow) (storage.Lock, error) {
	var l storage.Lock
	var created int64
	var expires *int64
	if err := row.Scan(&l.User, &l.Reason, &l.By, &created, &expires); err != nil {
		return storage.Lock{}, err
	}
	l.Created = fromNanos(created)
	l.Expires = fromNanosPtr(expires)
	return l, nil
}
