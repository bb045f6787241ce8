package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
)

// TestListenSurvivesIdleChecks drives the idle-ping path many times: a
// timed-out wait must leave the connection usable (no reconnect, so no
// empty marker) and later notifications must still arrive.
func TestListenSurvivesIdleChecks(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	s.listenIdle = 20 * time.Millisecond
	ch, err := s.Listen(ctx, "idle")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	for i, want := range []string{"one", "two", "three"} {
		// Long enough for several idle checks, each a timeout plus a ping.
		time.Sleep(10 * s.listenIdle)
		if err := s.Notify(ctx, "idle", want); err != nil {
			t.Fatalf("Notify %d: %v", i, err)
		}
		select {
		case got := <-ch:
			if got != want {
				t.Fatalf("got %q, want %q: an idle check was taken for a lost connection", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("notification %q never arrived", want)
		}
	}
}
