//go:build race

package e2e

// raceEnabled reports whether this test binary runs under the race detector,
// in which case the gatehouse binary is built with -race too so data races in
// the server fail the end-to-end tests instead of going unnoticed.
const raceEnabled = true
