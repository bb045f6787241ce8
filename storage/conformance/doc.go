// Package conformance is the one test suite every storage backend must pass.
// A backend's test calls Run with a function that opens a fresh, empty store;
// the suite then exercises every method of storage.Store, including the
// concurrency promises the rest of Gatehouse relies on: concurrent audit
// appends form one gapless hash chain, concurrent request reviews are never
// lost, and a one-time value is taken at most once.
//
// Precision the suite demands: audit event times round-trip to the
// nanosecond (they are part of the event hash); all other times need only
// survive to the microsecond, which PostgreSQL timestamps provide. Times may
// come back in any location; they are compared as instants.
package conformance
