package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// The throwaway cluster runs with fsync off, so these figures measure the
// backend's round trips and locking, not the disk.

func BenchmarkAppendEvents(b *testing.B) {
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			dsn, _ := pgtest.Start(b)
			s := openStore(b, dsn)
			ctx := context.Background()
			batch := make([]storage.Event, size)
			for i := range batch {
				batch[i] = storage.Event{Time: time.Now(), Type: "exec", Actor: "bob", Target: "root@db-1",
					Outcome: "success", Fields: map[string]any{"command": "uptime"}}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.AppendEvents(ctx, batch, seal); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAppendEventsTwoBastions appends from many goroutines spread over
// two Stores, all contending for the one chain-head row lock.
func BenchmarkAppendEventsTwoBastions(b *testing.B) {
	dsn, _ := pgtest.Start(b)
	stores := []storage.Store{openStore(b, dsn), openStore(b, dsn)}
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Goroutines alternate between the two bastions.
		s := stores[next.Add(1)%2]
		ev := []storage.Event{{Time: time.Now(), Type: "exec", Actor: "bob"}}
		for pb.Next() {
			if _, err := s.AppendEvents(ctx, ev, seal); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUpdateRequest(b *testing.B) {
	dsn, _ := pgtest.Start(b)
	s := openStore(b, dsn)
	ctx := context.Background()
	if err := s.CreateRequest(ctx, storage.Request{ID: "r1", User: "bob", Roles: []string{"dba"},
		State: storage.StatePending, Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.UpdateRequest(ctx, "r1", func(r *storage.Request) error {
			r.Updated = time.Now()
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkActiveLock is the read every new SSH connection makes.
func BenchmarkActiveLock(b *testing.B) {
	dsn, _ := pgtest.Start(b)
	s := openStore(b, dsn)
	ctx := context.Background()
	now := time.Now()
	if err := s.PutLock(ctx, storage.Lock{User: "bob", Reason: "x", By: "sam", Created: now}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ActiveLock(ctx, "bob", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNotifyToListen is the latency of a change hint between bastions.
func BenchmarkNotifyToListen(b *testing.B) {
	dsn, _ := pgtest.Start(b)
	a, c := openStore(b, dsn), openStore(b, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := a.Listen(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := c.Notify(ctx, "bench", "x"); err != nil {
			b.Fatal(err)
		}
		<-ch
	}
}
