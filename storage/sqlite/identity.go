package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// PutLock implements storage.LockStore; a new lock replaces the old one.
func (s *Store) PutLock(ctx context.Context, l storage.Lock) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO locks(user, reason, by, created, expires) VALUES (?,?,?,?,?)
		ON CONFLICT(user) DO UPDATE SET reason = excluded.reason, by = excluded.by, created = excluded.created,
		expires = excluded.expires`, l.User, l.Reason, l.By, ns(l.Created), nsPtr(l.Expires))
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.User, err)
	}
	return nil
}

// DeleteLock implements storage.LockStore; ErrNotFound when user had no lock.
func (s *Store) DeleteLock(ctx context.Context, user string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM locks WHERE user = ?`, user)
	if err != nil {
		return fmt.Errorf("unlock %s: %w", user, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("unlock %s: %w", user, err)
	} else if n == 0 {
		return fmt.Errorf("unlock %s: %w", user, storage.ErrNotFound)
	}
	return nil
}

func scanLock(sc rowScanner) (storage.Lock, error) {
	var l storage.Lock
	var created, expires sql.NullInt64
	if err := sc.Scan(&l.User, &l.Reason, &l.By, &created, &expires); err != nil {
		return l, err
	}
	l.Created = fromNS(created)
	l.Expires = fromNSPtr(expires)
	return l, nil
}

// ActiveLock implements storage.LockStore.
func (s *Store) ActiveLock(ctx context.Context, user string, now time.Time) (storage.Lock, error) {
	l, err := scanLock(s.r.QueryRowContext(ctx, `SELECT user, reason, by, created, expires FROM locks
		WHERE user = ? AND (expires IS NULL OR expires > ?)`, user, now.UnixNano()))
	if err != nil {
		return storage.Lock{}, fmt.Errorf("active lock of %s: %w", user, errNoRow(err))
	}
	return l, nil
}

// ListLocks implements storage.LockStore: the locks in force at now.
func (s *Store) ListLocks(ctx context.Context, now time.Time) ([]storage.Lock, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT user, reason, by, created, expires FROM locks
		WHERE expires IS NULL OR expires > ? ORDER BY user`, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	defer rows.Close()
	var out []storage.Lock
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return out, nil
}

const loginCols = `id, user, claims, kind, key_fp, created, expires, revoked, csrf_token`

// PutLogin implements storage.IdentityStore; it creates or replaces.
func (s *Store) PutLogin(ctx context.Context, l storage.Login) error {
	claims, err := encJSON(l.Claims, len(l.Claims) == 0)
	if err != nil {
		return fmt.Errorf("put login %s: encode claims: %w", l.ID, err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO logins(`+loginCols+`) VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET user = excluded.user, claims = excluded.claims, kind = excluded.kind,
		key_fp = excluded.key_fp, created = excluded.created, expires = excluded.expires,
		revoked = excluded.revoked, csrf_token = excluded.csrf_token`,
		l.ID, l.User, claims, l.Kind, l.KeyFP, ns(l.Created), ns(l.Expires), l.Revoked, l.CSRFToken)
	if err != nil {
		return fmt.Errorf("put login %s: %w", l.ID, err)
	}
	return nil
}

func scanLogin(sc rowScanner) (storage.Login, error) {
	var l storage.Login
	var claims sql.NullString
	var created, expires sql.NullInt64
	if err := sc.Scan(&l.ID, &l.User, &claims, &l.Kind, &l.KeyFP, &created, &expires, &l.Revoked, &l.CSRFToken); err != nil {
		return l, err
	}
	if err := decJSON(claims, &l.Claims); err != nil {
		return l, fmt.Errorf("decode claims of login %s: %w", l.ID, err)
	}
	l.Created = fromNS(created)
	l.Expires = fromNS(expires)
	return l, nil
}

// GetLogin implements storage.IdentityStore. Expired or revoked logins are
// returned as stored; judging them is the caller's business.
func (s *Store) GetLogin(ctx context.Context, id string) (storage.Login, error) {
	l, err := scanLogin(s.r.QueryRowContext(ctx, `SELECT `+loginCols+` FROM logins WHERE id = ?`, id))
	if err != nil {
		return storage.Login{}, fmt.Errorf("get login %s: %w", id, errNoRow(err))
	}
	return l, nil
}

// LoginByKey implements storage.IdentityStore; when a key was bound more
// than once the newest binding wins.
func (s *Store) LoginByKey(ctx context.Context, fp string, now time.Time) (storage.Login, error) {
	l, err := scanLogin(s.r.QueryRowContext(ctx, `SELECT `+loginCols+` FROM logins
		WHERE key_fp = ? AND kind = 'sshkey' AND revoked = 0 AND expires > ?
		ORDER BY created DESC, id DESC LIMIT 1`, fp, now.UnixNano()))
	if err != nil {
		return storage.Login{}, fmt.Errorf("login by key %s: %w", fp, errNoRow(err))
	}
	return l, nil
}

// LatestLogin implements storage.IdentityStore.
func (s *Store) LatestLogin(ctx context.Context, user string) (storage.Login, error) {
	l, err := scanLogin(s.r.QueryRowContext(ctx, `SELECT `+loginCols+` FROM logins
		WHERE user = ? AND kind <> 'api' ORDER BY created DESC, id DESC LIMIT 1`, user))
	if err != nil {
		return storage.Login{}, fmt.Errorf("latest login of %s: %w", user, errNoRow(err))
	}
	return l, nil
}

// RevokeLogin implements storage.IdentityStore.
func (s *Store) RevokeLogin(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE logins SET revoked = 1 WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("revoke login %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke login %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("revoke login %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

// RevokeLogins implements storage.IdentityStore.
func (s *Store) RevokeLogins(ctx context.Context, user, kind string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE logins SET revoked = 1 WHERE user = ? AND kind = ? AND revoked = 0`, user, kind); err != nil {
		return fmt.Errorf("revoke %s logins of %s: %w", kind, user, err)
	}
	return nil
}

// DeleteExpiredLogins implements storage.IdentityStore.
func (s *Store) DeleteExpiredLogins(ctx context.Context, kind string, before time.Time) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM logins WHERE kind = ? AND expires < ?`, kind, ns(before)); err != nil {
		return fmt.Errorf("delete expired %s logins: %w", kind, err)
	}
	return nil
}

// PutOneTime implements storage.IdentityStore; putting an existing key
// replaces its value.
func (s *Store) PutOneTime(ctx context.Context, key string, value []byte, expires time.Time) error {
	if value == nil {
		value = []byte{}
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO one_time(key, value, expires) VALUES (?,?,?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires`, key, value, expires.UnixNano())
	if err != nil {
		return fmt.Errorf("put one-time value: %w", err)
	}
	return nil
}

// TakeOneTime implements storage.IdentityStore. DELETE ... RETURNING makes
// "read and consume" one statement, so two racing takers cannot both win.
// Expired values are swept on the way so the table does not grow.
func (s *Store) TakeOneTime(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var value []byte
	var expires int64
	err := s.withTx(ctx, "take one-time value", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM one_time WHERE key = ? RETURNING value, expires`, key).Scan(&value, &expires)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM one_time WHERE expires <= ?`, now.UnixNano()); err != nil {
			return fmt.Errorf("sweep expired one-time values: %w", err)
		}
		return nil
	})
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expires <= now.UnixNano()) {
		return nil, fmt.Errorf("take one-time value: %w", storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("take one-time value: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}
