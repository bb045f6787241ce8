package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// CreateBot implements storage.BotStore.
func (s *Store) CreateBot(ctx context.Context, b storage.Bot, t storage.Token) error {
	roles, err := encJSON(b.Roles, len(b.Roles) == 0)
	if err != nil {
		return fmt.Errorf("create bot %s: encode roles: %w", b.Name, err)
	}
	return s.withTx(ctx, "create bot "+b.Name, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO bots(name, roles, created, by) VALUES (?,?,?,?)`,
			b.Name, roles, ns(b.Created), b.By)
		if isUnique(err) {
			return fmt.Errorf("create bot %s: %w", b.Name, storage.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create bot %s: %w", b.Name, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO bot_tokens(hash, bot, created, expires) VALUES (?,?,?,?)`,
			t.Hash, b.Name, ns(t.Created), t.Expires.UnixNano())
		if isUnique(err) {
			return fmt.Errorf("create token of bot %s: %w", b.Name, storage.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create token of bot %s: %w", b.Name, err)
		}
		return nil
	})
}

func scanBot(sc rowScanner) (storage.Bot, error) {
	var b storage.Bot
	var roles sql.NullString
	var created sql.NullInt64
	if err := sc.Scan(&b.Name, &roles, &created, &b.By); err != nil {
		return b, err
	}
	if err := decJSON(roles, &b.Roles); err != nil {
		return b, fmt.Errorf("decode roles of bot %s: %w", b.Name, err)
	}
	b.Created = fromNS(created)
	return b, nil
}

// ListBots implements storage.BotStore.
func (s *Store) ListBots(ctx context.Context) ([]storage.Bot, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, roles, created, by FROM bots ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list bots: %w", err)
	}
	defer rows.Close()
	var out []storage.Bot
	for rows.Next() {
		b, err := scanBot(rows)
		if err != nil {
			return nil, fmt.Errorf("list bots: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bots: %w", err)
	}
	return out, nil
}

// DeleteBot implements storage.BotStore; its tokens go with it (ON DELETE
// CASCADE, and explicitly in case foreign keys were turned off in the dsn).
func (s *Store) DeleteBot(ctx context.Context, name string) error {
	return s.withTx(ctx, "remove bot "+name, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM bot_tokens WHERE bot = ?`, name); err != nil {
			return fmt.Errorf("remove tokens of bot %s: %w", name, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM bots WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("remove bot %s: %w", name, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("remove bot %s: %w", name, err)
		} else if n == 0 {
			return fmt.Errorf("remove bot %s: %w", name, storage.ErrNotFound)
		}
		return nil
	})
}

// BotByToken implements storage.BotStore.
func (s *Store) BotByToken(ctx context.Context, hash string, now time.Time) (storage.Bot, storage.Token, error) {
	var t storage.Token
	var tCreated sql.NullInt64
	var tExpires int64
	var roles sql.NullString
	var bCreated sql.NullInt64
	var b storage.Bot
	err := s.r.QueryRowContext(ctx, `SELECT t.hash, t.bot, t.created, t.expires, b.name, b.roles, b.created, b.by
		FROM bot_tokens t JOIN bots b ON b.name = t.bot WHERE t.hash = ? AND t.expires > ?`, hash, now.UnixNano()).
		Scan(&t.Hash, &t.Bot, &tCreated, &tExpires, &b.Name, &roles, &bCreated, &b.By)
	if err != nil {
		return storage.Bot{}, storage.Token{}, fmt.Errorf("find bot token: %w", errNoRow(err))
	}
	if err := decJSON(roles, &b.Roles); err != nil {
		return storage.Bot{}, storage.Token{}, fmt.Errorf("decode roles of bot %s: %w", b.Name, err)
	}
	t.Created, t.Expires, b.Created = fromNS(tCreated), time.Unix(0, tExpires).UTC(), fromNS(bCreated)
	return b, t, nil
}
