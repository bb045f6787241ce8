package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Store is a storage.Store backed by a PostgreSQL connection pool. It is safe
// for concurrent use, and several Stores (in one process or on several
// bastions) may share one database.
type Store struct {
	pool *pgxpool.Pool
	// connConfig is kept so Listen can open dedicated connections: a LISTEN
	// must outlive any single pooled query, so it cannot borrow a pool conn.
	connConfig *pgx.ConnConfig
	log        *slog.Logger
	listenIdle time.Duration // listenIdleCheck; shortened by tests

	// life ends when Close is called; listener goroutines watch it so Close
	// can stop them and wait for them before closing the pool.
	life      context.Context
	endLife   context.CancelFunc
	listeners sync.WaitGroup
	mu        sync.Mutex // guards closed and listeners.Add against Close
	closed    bool
	closeOnce sync.Once
}

var _ storage.Store = (*Store)(nil)

// Option adjusts Open.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger sets where the Store logs background events such as Listen
// reconnects. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// Open connects to the database named by dsn (a libpq URL or key=value
// string), applies any missing schema migrations, and returns the Store.
// Concurrent Opens against one database, from one or many processes, are
// safe: migrations are serialised by an advisory lock.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password, so it is deliberately not echoed.
		return nil, fmt.Errorf("parse postgres dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create postgres pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s:%d/%s: %w",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	life, endLife := context.WithCancel(context.Background())
	return &Store{
		pool:       pool,
		connConfig: cfg.ConnConfig.Copy(),
		log:        o.log,
		listenIdle: listenIdleCheck,
		life:       life,
		endLife:    endLife,
	}, nil
}

// Close stops every Listen goroutine, waits for them, and closes the pool.
// It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.endLife()
		s.listeners.Wait()
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers; health checks use it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// rollback ends tx if it is still open; after Commit it is a no-op. The
// caller's ctx may be what failed the transaction, so it rolls back on a
// fresh, bounded context: an unreachable server must not hang the caller.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// rollbackTimeout bounds the clean-up of a failed transaction.
const rollbackTimeout = 5 * time.Second

// SQLSTATE codes we translate into storage errors.
const (
	codeUniqueViolation = "23505"
)

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation
}

// notFound turns pgx's no-rows error into storage.ErrNotFound so callers
// can branch without importing pgx.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// toNanos and fromNanos map time.Time to the bigint columns. The zero time
// maps to 0 and back, because time.Time{}.UnixNano is out of int64 range and
// callers compare against IsZero.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func toNanosPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	n := toNanos(*t)
	return &n
}

func fromNanosPtr(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := fromNanos(*n)
	return &t
}

// inTx runs fn inside a transaction and commits it, rolling back when fn or
// the commit fails. Rollback after a successful commit is a no-op.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer rollback(ctx, tx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}
