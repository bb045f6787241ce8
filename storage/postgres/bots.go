package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// CreateBot implements storage.BotStore.
func (s *Store) CreateBot(ctx context.Context, b storage.Bot, t storage.Token) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO bots (name, roles, created_ns, by_name) VALUES ($1, $2, $3, $4)`,
			b.Name, b.Roles, toNanos(b.Created), textSafe(b.By))
		if isUniqueViolation(err) {
			return fmt.Errorf("create bot %q: %w", b.Name, storage.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create bot %q: %w", b.Name, err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO bot_tokens (hash, bot, created_ns, expires_ns) VALUES ($1, $2, $3, $4)`,
			t.Hash, b.Name, toNanos(t.Created), toNanos(t.Expires))
		if isUniqueViolation(err) {
			return fmt.Errorf("create token of bot %q: %w", b.Name, storage.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create token of bot %q: %w", b.Name, err)
		}
		return nil
	})
}

func scanBot(row pgx.CollectableRow) (storage.Bot, error) {
	var b storage.Bot
	var created int64
	if err := row.Scan(&b.Name, &b.Roles, &created, &b.By); err != nil {
		return storage.Bot{}, err
	}
	b.Created = fromNanos(created)
	return b, nil
}

// ListBots implements storage.BotStore.
func (s *Store) ListBots(ctx context.Context) ([]storage.Bot, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, roles, created_ns, by_name FROM bots ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list bots: %w", err)
	}
	bots, err := pgx.CollectRows(rows, scanBot)
	if err != nil {
		return nil, fmt.Errorf("list bots: %w", err)
	}
	return bots, nil
}

// DeleteBot implements storage.BotStore; its tokens go with it (ON DELETE
// CASCADE).
func (s *Store) DeleteBot(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM bots WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("remove bot %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("remove bot %q: %w", name, storage.ErrNotFound)
	}
	return nil
}

// BotByToken implements storage.BotStore.
func (s *Store) BotByToken(ctx context.Context, hash string, now time.Time) (storage.Bot, storage.Token, error) {
	var b storage.Bot
	var t storage.Token
	var tCreated, tExpires, bCreated int64
	err := s.pool.QueryRow(ctx, `SELECT t.hash, t.bot, t.created_ns, t.expires_ns, b.name, b.roles, b.created_ns, b.by_name
		FROM bot_tokens t JOIN bots b ON b.name = t.bot WHERE t.hash = $1 AND t.expires_ns > $2`, hash, toNanos(now)).
		Scan(&t.Hash, &t.Bot, &tCreated, &tExpires, &b.Name, &b.Roles, &bCreated, &b.By)
	if err != nil {
		return storage.Bot{}, storage.Token{}, fmt.Errorf("find bot token: %w", notFound(err))
	}
	t.Created, t.Expires, b.Created = fromNanos(tCreated), fromNanos(tExpires), fromNanos(bCreated)
	return b, t, nil
}
