// Package pgtest gives tests a real PostgreSQL server without any setup.
//
// With $GATEHOUSE_TEST_PG_DSN set, tests use that server (one new database
// per test). Otherwise, when the PostgreSQL server binaries are installed,
// pgtest creates a throwaway cluster with initdb in a temporary directory,
// runs it on a free loopback port (as the postgres OS user when the tests
// run as root, since the server refuses root), and deletes it when the test
// ends. With neither, the test is skipped with a message on stderr, because
// a silently skipped database backend is indistinguishable from a passing
// one. The storage/postgres tests and end-to-end tests share this harness.
package pgtest
