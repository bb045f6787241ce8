package audit_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// BenchmarkAppendParallel measures sustained Log.Append throughput with the
// hash chain and group commit on SQLite (WAL, synchronous=FULL) in a temp
// dir, from many concurrent callers as a busy bastion has.
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	store, _ := openStore(b)
	cs := &countingStore{Store: store}
	l := newLog(b, cs, audit.Options{})
	b.SetParallelism(128) // goroutines per GOMAXPROCS: sessions, not CPUs, append
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := l.Append(ctx, storage.Event{Type: audit.TypeSFTPOp, Actor: "bob", Target: "root@db-1", Outcome: audit.OutcomeSuccess,
				Fields: map[string]any{"op": "open", "path": "/var/lib/postgresql/data/base/16384/2619", "session_id": "2f1c9a7e"}})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	b.ReportMetric(float64(b.N)/float64(cs.commits.Load()), "events/commit")
	// CPU per append too: on a shared machine appends/s mostly measures
	// how much CPU the neighbours leave, this what an append costs.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/append")
}

// countingStore counts commits to show how well appends are batched. It
// embeds the concrete store so that Log sees the same optional methods as
// with the store itself.
type countingStore struct {
	*sqlite.Store
	commits atomic.Int64
}

func (c *countingStore) AppendEvents(ctx context.Context, evs []storage.Event, seal func(*storage.Event) []byte) ([]storage.Event, error) {
	c.commits.Add(1)
	return c.Store.AppendEvents(ctx, evs, seal)
}

func (c *countingStore) AppendEncodedEvents(ctx context.Context, evs []storage.Event, fields [][]byte, seal func(*storage.Event) []byte) ([]storage.Event, error) {
	c.commits.Add(1)
	return c.Store.AppendEncodedEvents(ctx, evs, fields, seal)
}

// BenchmarkVerify measures Verify over a chain of one million events. The
// chain is built through AppendEvents in large batches (the bulk path), with
// the real hash, so Verify sees exactly what Log would have written.
func BenchmarkVerify(b *testing.B) {
	const total, batch = 1_000_000, 20_000
	ctx := context.Background()
	store, _ := openStore(b)
	seal := func(ev *storage.Event) []byte {
		h, err := audit.Hash(ev)
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	evs := make([]storage.Event, batch)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for done := 0; done < total; done += batch {
		for i := range evs {
			n := done + i
			evs[i] = storage.Event{Time: start.Add(time.Duration(n) * time.Millisecond), Type: audit.TypeExec,
				Actor: "bob", Target: "root@db-1", Outcome: audit.OutcomeSuccess,
				Fields: map[string]any{"cmd": "systemctl status postgresql", "session_id": "2f1c9a7e", "n": n}}
		}
		if _, err := store.AppendEvents(ctx, evs, seal); err != nil {
			b.Fatalf("bulk append: %v", err)
		}
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		rep, err := audit.Verify(ctx, store)
		if err != nil || !rep.OK || rep.Events != total {
			b.Fatalf("Verify = %+v, %v", rep, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/1M-events")
	// CPU seconds as well: on a shared machine wall time mostly measures
	// the neighbours.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/1M-events")
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
