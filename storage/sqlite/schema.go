package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations returns the schema steps in order; step i brings the database to
// version i+1. Steps are append-only: an applied step is never edited, a
// change is a new step, so every existing database can be brought forward.
// Times are INTEGER Unix nanoseconds (UTC) so they sort, index and round-trip
// exactly, which the audit hash depends on.
func migrations() []string {
	return []string{
		// 1: initial schema.
		`
CREATE TABLE events (
	seq       INTEGER PRIMARY KEY,
	time      INTEGER NOT NULL,
	type      TEXT NOT NULL,
	actor     TEXT NOT NULL DEFAULT '',
	target    TEXT NOT NULL DEFAULT '',
	outcome   TEXT NOT NULL DEFAULT '',
	fields    TEXT,
	prev_hash BLOB,
	hash      BLOB NOT NULL
);
CREATE INDEX events_type ON events(type, seq);
CREATE INDEX events_actor ON events(actor, seq);
CREATE INDEX events_target ON events(target, seq);
CREATE INDEX events_time ON events(time);

CREATE TABLE audit_anchor (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash BLOB
);

CREATE TABLE sessions (
	id          TEXT PRIMARY KEY,
	user        TEXT NOT NULL,
	login       TEXT NOT NULL DEFAULT '',
	node        TEXT NOT NULL DEFAULT '',
	kind        TEXT NOT NULL DEFAULT '',
	command     TEXT NOT NULL DEFAULT '',
	roles       TEXT,
	request_ids TEXT,
	client_addr TEXT NOT NULL DEFAULT '',
	bastion     TEXT NOT NULL DEFAULT '',
	recording   TEXT NOT NULL DEFAULT '',
	start       INTEGER,
	end_time    INTEGER,
	status      TEXT NOT NULL DEFAULT '',
	exit_status INTEGER,
	bytes_in    INTEGER NOT NULL DEFAULT 0,
	bytes_out   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_start ON sessions(start);
CREATE INDEX sessions_user ON sessions(user, start);
CREATE INDEX sessions_node ON sessions(node, start);
CREATE INDEX sessions_status ON sessions(status, start);
CREATE INDEX sessions_bastion ON sessions(bastion, status);

CREATE TABLE requests (
	id           TEXT PRIMARY KEY,
	user         TEXT NOT NULL,
	roles        TEXT,
	reason       TEXT NOT NULL DEFAULT '',
	duration     INTEGER NOT NULL DEFAULT 0,
	state        TEXT NOT NULL,
	created      INTEGER,
	expires      INTEGER,
	grant_start  INTEGER,
	grant_end    INTEGER,
	reviews      TEXT,
	state_reason TEXT NOT NULL DEFAULT '',
	state_by     TEXT NOT NULL DEFAULT '',
	updated      INTEGER
);
CREATE INDEX requests_created ON requests(created);
CREATE INDEX requests_user ON requests(user, created);
CREATE INDEX requests_state ON requests(state, created);
CREATE INDEX requests_grants ON requests(user, state, grant_end);

CREATE TABLE locks (
	user    TEXT PRIMARY KEY,
	reason  TEXT NOT NULL DEFAULT '',
	by      TEXT NOT NULL DEFAULT '',
	created INTEGER,
	expires INTEGER
);

CREATE TABLE logins (
	id         TEXT PRIMARY KEY,
	user       TEXT NOT NULL,
	claims     TEXT,
	kind       TEXT NOT NULL DEFAULT '',
	key_fp     TEXT NOT NULL DEFAULT '',
	created    INTEGER,
	expires    INTEGER,
	revoked    INTEGER NOT NULL DEFAULT 0,
	csrf_token TEXT NOT NULL DEFAULT ''
);
CREATE INDEX logins_key ON logins(key_fp, kind);

CREATE TABLE one_time (
	key     TEXT PRIMARY KEY,
	value   BLOB,
	expires INTEGER NOT NULL
);
CREATE INDEX one_time_expires ON one_time(expires);
`,
		// 2: bots and their API tokens (hashes only).
		`
CREATE TABLE bots (
	name    TEXT PRIMARY KEY,
	roles   TEXT,
	created INTEGER,
	by      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE bot_tokens (
	hash    TEXT PRIMARY KEY,
	bot     TEXT NOT NULL REFERENCES bots(name) ON DELETE CASCADE,
	created INTEGER,
	expires INTEGER NOT NULL
);
CREATE INDEX bot_tokens_bot ON bot_tokens(bot);
`,
		// 3: a user's latest login (policy check); richer access requests:
		// subset approval, resource requests, session-bound grants.
		`
CREATE INDEX logins_user ON logins(user, created);
ALTER TABLE requests ADD COLUMN requested TEXT;
ALTER TABLE requests ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN login TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN for_session INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
`,
		// 4: resource requests by label selector (JSON object; NULL for none).
		`
ALTER TABLE requests ADD COLUMN labels TEXT;
`,
	}
}

// migrate applies every step newer than the database's version, each in its
// own write transaction. The version check happens inside the transaction so
// two processes opening a fresh database at once cannot both apply a step.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	applied INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for i, step := range migrations() {
		version := i + 1
		if err := applyStep(ctx, db, version, step); err != nil {
			return err
		}
	}
	return nil
}

func applyStep(ctx context.Context, db *sql.DB, version int, step string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration %d: %w", version, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, step); err != nil {
		return fmt.Errorf("apply migration %d: %w", version, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied) VALUES (?, ?)`, version, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("record migration %d: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration %d: %w", version, err)
	}
	return nil
}
