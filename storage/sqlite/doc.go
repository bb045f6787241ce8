// Package sqlite is the single-file storage backend: everything a bastion
// persists (audit chain, session index, access requests, locks, logins) in
// one SQLite database next to the recordings.
//
// Durability comes first because the audit log promises that an acknowledged
// append is never lost: the database runs in WAL mode with synchronous=FULL,
// so a commit has reached the disk before AppendEvents returns. The one
// exception is the session index row (CreateSession, EndSession): it commits
// with synchronous=NORMAL, reaching the WAL (safe from a process crash) and
// the disk with the next FULL commit, which is the session.start or
// session.end audit append the proxy makes right after it. All writes go
// through one connection opened with BEGIN IMMEDIATE transactions; inside a
// process that serialises writers without busy-waiting, and across processes
// (the CLI writing a lock while `gatehouse serve` runs) SQLite's own write
// lock plus busy_timeout does the same. Reads use a separate pool so list and
// verify queries never queue behind a writer. The schema is versioned in the
// schema_migrations table and brought up to date by Open.
package sqlite
