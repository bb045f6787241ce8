package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const loginColumns = `id, user_name, claims, kind, key_fp, created_ns, expires_ns, revoked, csrf_token`

// PutLogin implements storage.IdentityStore; it creates or replaces the
// login with l.ID (a refresh rewrites expiry and claims in place).
func (s *Store) PutLogin(ctx context.Context, l storage.Login) error {
	claims, err := marshalNullable(l.Claims, l.Claims == nil)
	if err != nil {
		return fmt.Errorf("store login %q: encode claims: %w", l.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO logins (`+loginColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET user_name = EXCLUDED.user_name, claims = EXCLUDED.claims,
			kind = EXCLUDED.kind, key_fp = EXCLUDED.key_fp, created_ns = EXCLUDED.created_ns,
			expires_ns = EXCLUDED.expires_ns, revoked = EXCLUDED.revoked, csrf_token = EXCLUDED.csrf_token`,
		l.ID, l.User, claims, l.Kind, l.KeyFP, toNanos(l.Created), toNanos(l.Expires), l.Revoked, l.CSRFToken)
	if err != nil {
		return fmt.Errorf("store login %q: %w", l.ID, err)
	}
	return nil
}

// GetLogin implements storage.IdentityStore. It returns expired and revoked
// logins too; callers decide what those mean.
func (s *Store) GetLogin(ctx context.Context, id string) (storage.Login, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+loginColumns+` FROM logins WHERE id = $1`, id)
	if err != nil {
		return storage.Login{}, fmt.Errorf("get login %q: %w", id, err)
	}
	l, err := pgx.CollectExactlyOneRow(rows, scanLogin)
	if err != nil {
		return storage.Login{}, fmt.Errorf("get login %q: %w", id, notFound(err))
	}
	return l, nil
}

// LoginByKey implements storage.IdentityStore. If a key was bound more than
// once, the newest binding wins.
func (s *Store) LoginByKey(ctx context.Context, fp string, now time.Time) (storage.Login, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+loginColumns+` FROM logins
		WHERE kind = 'sshkey' AND key_fp = $1 AND key_fp <> '' AND NOT revoked AND expires_ns > $2
		ORDER BY created_ns DESC, id DESC LIMIT 1`, fp, toNanos(now))
	if err != nil {
		return storage.Login{}, fmt.Errorf("find login of key %s: %w", fp, err)
	}
	l, err := pgx.CollectExactlyOneRow(rows, scanLogin)
	if err != nil {
		return storage.Login{}, fmt.Errorf("find login of key %s: %w", fp, notFound(err))
	}
	return l, nil
}

// LatestLogin implements storage.IdentityStore.
func (s *Store) LatestLogin(ctx context.Context, user string) (storage.Login, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+loginColumns+` FROM logins
		WHERE user_name = $1 AND kind <> 'api' ORDER BY created_ns DESC, id DESC LIMIT 1`, user)
	if err != nil {
		return storage.Login{}, fmt.Errorf("latest login of %q: %w", user, err)
	}
	l, err := pgx.CollectExactlyOneRow(rows, scanLogin)
	if err != nil {
		return storage.Login{}, fmt.Errorf("latest login of %q: %w", user, notFound(err))
	}
	return l, nil
}

// RevokeLogin implements storage.IdentityStore.
func (s *Store) RevokeLogin(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE logins SET revoked = true WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke login %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke login %q: %w", id, storage.ErrNotFound)
	}
	return nil
}

// RevokeLogins implements storage.IdentityStore.
func (s *Store) RevokeLogins(ctx context.Context, user, kind string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE logins SET revoked = true WHERE user_name = $1 AND kind = $2 AND NOT revoked`, user, kind); err != nil {
		return fmt.Errorf("revoke %s logins of %q: %w", kind, user, err)
	}
	return nil
}

// DeleteExpiredLogins implements storage.IdentityStore.
func (s *Store) DeleteExpiredLogins(ctx context.Context, kind string, before time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM logins WHERE kind = $1 AND expires_ns < $2`, kind, toNanos(before)); err != nil {
		return fmt.Errorf("delete expired %s logins: %w", kind, err)
	}
	return nil
}

// PutOneTime implements storage.IdentityStore; putting a key again replaces
// its value and expiry.
func (s *Store) PutOneTime(ctx context.Context, key string, value []byte, expires time.Time) error {
	if value == nil {
		value = []byte{} // the column is NOT NULL; nil and empty mean the same here
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO one_time (key, value, expires_ns) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_ns = EXCLUDED.expires_ns`,
		key, value, toNanos(expires))
	if err != nil {
		return fmt.Errorf("store one-time value: %w", err)
	}
	return nil
}

// TakeOneTime implements storage.IdentityStore. DELETE ... RETURNING makes
// the take atomic: of two bastions racing for one code, exactly one gets it.
// An expired value is deleted too, and reported as not found. Every take
// also sweeps values expired by now, in the same round trip, so abandoned
// codes do not pile up; the sweep uses the caller's clock, like the check.
func (s *Store) TakeOneTime(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var value []byte
	var expires int64
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM one_time WHERE key = $1 RETURNING value, expires_ns`, key).QueryRow(func(row pgx.Row) error {
		return row.Scan(&value, &expires)
	})
	b.Queue(`DELETE FROM one_time WHERE expires_ns <= $1`, toNanos(now))
	err := s.pool.SendBatch(ctx, b).Close()
	if err != nil {
		// The key is a secret (a login code), so it stays out of errors.
		return nil, fmt.Errorf("take one-time value: %w", notFound(err))
	}
	if expires <= toNanos(now) {
		return nil, fmt.Errorf("take one-time value: expired: %w", storage.ErrNotFound)
	}
	return value, nil
}

func scanLogin(row pgx.CollectableRow) (storage.Login, error) {
	var l storage.Login
	var claims []byte
	var created, expires int64
	if err := row.Scan(&l.ID, &l.User, &claims, &l.Kind, &l.KeyFP, &created, &expires, &l.Revoked, &l.CSRFToken); err != nil {
		return storage.Login{}, err
	}
	l.Created = fromNanos(created)
	l.Expires = fromNanos(expires)
	if claims != nil {
		if err := json.Unmarshal(claims, &l.Claims); err != nil {
			return storage.Login{}, fmt.Errorf("decode claims of login %q: %w", l.ID, err)
		}
	}
	return l, nil
}
