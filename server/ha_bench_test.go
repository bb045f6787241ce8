package server

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
)

// BenchmarkCrossBastionLock measures how long a lock placed through one
// bastion takes to become an access.Change on another bastion of the same
// database (the event that closes the user's sessions there), and the same
// for the unlock: one op is lock, seen, unlock, seen. Neither bastion runs
// its periodic scan, so only the notification path can deliver.
func BenchmarkCrossBastionLock(b *testing.B) {
	dsn, _ := pgtest.Start(b)
	one, two := buildOn(b, "one", dsn), buildOn(b, "two", dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes, stop := two.Access.Subscribe()
	defer stop()
	if err := two.Access.Scan(ctx); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); two.followOtherBastions(ctx, two.bus) }()
	defer func() { cancel(); <-done }()

	// Wait until two is listening: an empty note makes it scan, and the
	// scan reports the lock placed before it.
	admin := access.Admin()
	if _, err := one.Access.Lock(ctx, admin, "bob", "warm-up", 0); err != nil {
		b.Fatal(err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
warm:
	for {
		select {
		case <-changes:
			break warm
		case <-tick.C:
			if err := one.bus.Notify(ctx, changesChannel, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := one.Access.Unlock(ctx, admin, "bob"); err != nil {
		b.Fatal(err)
	}
	awaitKind(b, changes, access.ChangeUnlocked)

	for b.Loop() {
		if _, err := one.Access.Lock(ctx, admin, "bob", "bench", 0); err != nil {
			b.Fatal(err)
		}
		awaitKind(b, changes, access.ChangeLocked)
		if err := one.Access.Unlock(ctx, admin, "bob"); err != nil {
			b.Fatal(err)
		}
		awaitKind(b, changes, access.ChangeUnlocked)
	}
}

func awaitKind(b *testing.B, ch <-chan access.Change, kind string) {
	b.Helper()
	for {
		select {
		case c := <-ch:
			if c.Kind == kind {
				return
			}
		case <-time.After(30 * time.Second):
			b.Fatalf("no %s change arrived", kind)
		}
	}
}
