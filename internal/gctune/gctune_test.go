package gctune

import (
	"context"
	"io"
	"log/slog"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const floor = 64 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, maxPercent},
		{2 << 20, maxPercent}, // 64 MiB would be 3200%: capped
		{4 << 20, 1600},       // an idle bastion: 64 MiB of headroom
		{16 << 20, 400},
		{32 << 20, 200},
		{48 << 20, 133},
		{64 << 20, 100},
		{300 << 20, 100}, // a large heap keeps the default
	} {
		if got := Percent(tc.live, floor); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

// Run raises GOGC for this test binary's small heap and restores 100 when
// its context ends.
func TestRunSetsAndRestores(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, 1<<40, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := gogc()
		if p == maxPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC = %d after 5 s, want %d for a tiny heap", p, maxPercent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if p := gogc(); p != defaultPercent {
		t.Fatalf("GOGC = %d after Run ended, want %d", p, defaultPercent)
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
