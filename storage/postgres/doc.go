// Package postgres is the PostgreSQL backend of storage.Store, for running
// several bastions against one shared database.
//
// Everything that must stay correct when two bastions act at the same moment
// is serialised inside PostgreSQL rather than in Go: schema migrations run
// under a transaction-scoped advisory lock, audit appends lock the one-row
// chain head with SELECT ... FOR UPDATE so every bastion extends the same
// gapless hash chain, and UpdateRequest locks the request row it rewrites.
// Store.Notify and Store.Listen carry "something changed" hints between
// bastions over LISTEN/NOTIFY; they are hints only, so consumers must also
// re-check on a timer (see Listen).
//
// Times are stored as Unix nanoseconds (bigint) rather than timestamptz:
// timestamptz keeps only microseconds, and audit hashes are sealed over the
// exact time the caller gave, so a lossy round trip would break verification
// and make this backend disagree with the SQLite one.
package postgres
