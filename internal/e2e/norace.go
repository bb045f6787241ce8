//go:build !race

package e2e

// raceEnabled: see race.go.
const raceEnabled = false
