// Package bench measures Gatehouse against the thing it replaces: a stock
// OpenSSH sshd used as a jump host (`ssh -J root@jump node`). Every figure is
// taken in the same run, on the same machine, against the same node sshd,
// with the same client, cipher and data, so the ratio Gatehouse/baseline is
// meaningful even on a busy shared machine where absolute numbers are not.
//
// The package starts everything itself on loopback (a node sshd, a jump
// sshd, `gatehouse serve`), because the end-to-end harness in internal/e2e
// is built on testing.TB and benchmarks must not live in _test.go files
// (they would run in `make test`). Cases drive the real OpenSSH client where
// a user would (connect latency, bulk transfer) and a Go client that does
// the ProxyJump itself where thousands of sessions are needed (concurrency,
// connection rate, revocation). The cmd/ghbench program runs the cases and
// writes BENCHMARKS.md; `make bench` runs it.
package bench
