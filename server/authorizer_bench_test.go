package server

import (
	"context"
	"testing"
)

// BenchmarkJumpDecision is what a new jump costs the bastion to decide on
// SQLite: reading the user's standing and the policy decision for the login.
func BenchmarkJumpDecision(b *testing.B) {
	env := newAuthorizerEnv(b)
	ctx := context.Background()
	for b.Loop() {
		if v, err := env.az.Authorize(ctx, authzBob, "ubuntu", authzNode); err != nil || !v.Allowed {
			b.Fatal(v, err)
		}
	}
}
