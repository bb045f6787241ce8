package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLockKey is the pg_advisory_xact_lock key that serialises schema
// migrations between bastions starting at the same time. Any fixed value
// works as long as nothing else in the database uses it; this one is
// "gatehous" read as a big-endian int64.
const migrationLockKey int64 = 0x6761746568_6f7573

// migration is one forward-only schema step. Versions are dense from 1;
// a released migration is never edited, only followed by a new one.
type migration struct {
	version int
	sql     string
}

// migrations returns the schema history in order. It is a function rather
// than a package variable so no code can mutate the list.
func migrations() []migration {
	return []migration{
		{version: 1, sql: `
CREATE TABLE audit_head (
	-- Exactly one row: appends lock it FOR UPDATE, which is what serialises
	-- the chain across connections and bastions.
	id          boolean PRIMARY KEY DEFAULT true CHECK (id),
	seq         bigint  NOT NULL,
	hash        bytea,
	anchor_seq  bigint  NOT NULL,
	anchor_hash bytea
);
INSERT INTO audit_head (id, seq, hash, anchor_seq, anchor_hash) VALUES (true, 0, NULL, 0, NULL);

CREATE TABLE audit_events (
	seq       bigint PRIMARY KEY,
	time_ns   bigint NOT NULL,
	type      text   NOT NULL,
	actor     text   NOT NULL,
	target    text   NOT NULL,
	outcome   text   NOT NULL,
	-- json, not jsonb: it keeps the text exactly and accepts \u0000,
	-- which jsonb rejects and which attacker-chosen strings may contain.
	fields    json,
	prev_hash bytea,
	hash      bytea  NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (time_ns);
CREATE INDEX audit_events_type ON audit_events (type, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_target ON audit_events (target, seq);

CREATE TABLE sessions (
	id          text   PRIMARY KEY,
	user_name   text   NOT NULL,
	login       text   NOT NULL,
	node        text   NOT NULL,
	kind        text   NOT NULL,
	command     text   NOT NULL,
	roles       text[],
	request_ids text[],
	client_addr text   NOT NULL,
	bastion     text   NOT NULL,
	recording   text   NOT NULL,
	start_ns    bigint NOT NULL,
	end_ns      bigint,
	status      text   NOT NULL,
	exit_status integer,
	bytes_in    bigint NOT NULL,
	bytes_out   bigint NOT NULL
);
CREATE INDEX sessions_start ON sessions (start_ns DESC, id DESC);
CREATE INDEX sessions_user ON sessions (user_name, start_ns DESC);
CREATE INDEX sessions_node ON sessions (node, start_ns DESC);
CREATE INDEX sessions_live ON sessions (bastion) WHERE status = 'live';

CREATE TABLE access_requests (
	id             text   PRIMARY KEY,
	user_name      text   NOT NULL,
	roles          text[],
	reason         text   NOT NULL,
	duration_ns    bigint NOT NULL,
	state          text   NOT NULL,
	created_ns     bigint NOT NULL,
	expires_ns     bigint NOT NULL,
	grant_start_ns bigint,
	grant_end_ns   bigint,
	reviews        json,
	state_reason   text   NOT NULL,
	state_by       text   NOT NULL,
	updated_ns     bigint NOT NULL
);
CREATE INDEX access_requests_created ON access_requests (created_ns DESC, id DESC);
CREATE INDEX access_requests_user ON access_requests (user_name, state);

CREATE TABLE locks (
	user_name  text   PRIMARY KEY,
	reason     text   NOT NULL,
	by_name    text   NOT NULL,
	created_ns bigint NOT NULL,
	expires_ns bigint
);

CREATE TABLE logins (
	id         text    PRIMARY KEY,
	user_name  text    NOT NULL,
	claims     json,
	kind       text    NOT NULL,
	key_fp     text    NOT NULL,
	created_ns bigint  NOT NULL,
	expires_ns bigint  NOT NULL,
	revoked    boolean NOT NULL,
	csrf_token text    NOT NULL
);
CREATE INDEX logins_key ON logins (key_fp, created_ns DESC) WHERE kind = 'sshkey' AND key_fp <> '';

CREATE TABLE one_time (
	key        text   PRIMARY KEY,
	value      bytea  NOT NULL,
	expires_ns bigint NOT NULL
);
CREATE INDEX one_time_expires ON one_time (expires_ns);
`},
		{version: 2, sql: `
CREATE TABLE bots (
	name       text   PRIMARY KEY,
	roles      text[],
	created_ns bigint NOT NULL,
	by_name    text   NOT NULL
);
CREATE TABLE bot_tokens (
	hash       text   PRIMARY KEY,
	bot        text   NOT NULL REFERENCES bots (name) ON DELETE CASCADE,
	created_ns bigint NOT NULL,
	expires_ns bigint NOT NULL
);
CREATE INDEX bot_tokens_bot ON bot_tokens (bot);
`},
		{version: 3, sql: `
CREATE INDEX logins_user ON logins (user_name, created_ns DESC);
ALTER TABLE access_requests
	ADD COLUMN requested   text[],
	ADD COLUMN node        text    NOT NULL DEFAULT '',
	ADD COLUMN login       text    NOT NULL DEFAULT '',
	ADD COLUMN for_session boolean NOT NULL DEFAULT false,
	ADD COLUMN session_id  text    NOT NULL DEFAULT '';
`},
		// Resource requests by label selector; NULL for none.
		{version: 4, sql: `
ALTER TABLE access_requests ADD COLUMN labels jsonb;
`},
	}
}

// migrate brings the schema up to the newest version in one transaction.
// The advisory xact lock makes a second bastion starting at the same moment
// wait, then see the versions the first one recorded and apply nothing; the
// lock is released by COMMIT or ROLLBACK, so a crash cannot leave it held.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin schema migration: %w", err)
	}
	defer rollback(ctx, tx)

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("take schema migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("create schema_migrations table: %w", err)
	}
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	for _, m := range migrations() {
		if m.version <= current {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("apply schema migration %d: %w", m.version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
			return fmt.Errorf("record schema migration %d: %w", m.version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit schema migration: %w", err)
	}
	return nil
}

func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	if err := q.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// SchemaVersion reports the newest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, s.pool)
}

// LatestSchemaVersion is the schema version this build migrates to.
func LatestSchemaVersion() int {
	ms := migrations()
	return ms[len(ms)-1].version
}
