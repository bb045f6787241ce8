package access

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkEffective is the per-connection cost: policy plus one lock and
// one grant lookup in SQLite.
func BenchmarkEffective(b *testing.B) {
	e := newEnv(b)
	r := e.create(b, "bob", "web")
	e.review(b, "dave", r.ID, true)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.svc.Effective(ctx, "bob", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize is one decision for a new jump: the standing read
// (one lock and one grant lookup in SQLite) and the policy's answer.
func BenchmarkAuthorize(b *testing.B) {
	e := newEnv(b)
	r := e.create(b, "bob", "web")
	e.review(b, "dave", r.ID, true)
	ctx := context.Background()
	bob := Identity{User: "bob"}
	for b.Loop() {
		if v, err := e.svc.Authorize(ctx, bob, "www", webNode); err != nil || !v.Allowed {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkRequestApprove is one whole workflow: create, two reviews.
func BenchmarkRequestApprove(b *testing.B) {
	e := newEnv(b)
	bob, alice, ivy := e.who(b, "bob"), e.who(b, "alice"), e.who(b, "ivy")
	ctx := context.Background()
	for b.Loop() {
		r, err := e.svc.Create(ctx, bob, []string{"dba"}, "bench", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.svc.Review(ctx, alice, r.ID, true, ""); err != nil {
			b.Fatal(err)
		}
		if _, err := e.svc.Review(ctx, ivy, r.ID, true, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan is one watch pass over a database holding n grants from
// two months ago plus 20 recent ones; settled history should not cost
// anything beyond the first page.
func BenchmarkScan(b *testing.B) {
	for _, n := range []int{0, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := newEnv(b)
			dave := e.who(b, "dave")
			ctx := context.Background()
			for range n {
				r := e.create(b, "bob", "web")
				if _, err := e.svc.Review(ctx, dave, r.ID, true, ""); err != nil {
					b.Fatal(err)
				}
			}
			e.clock.Advance(60 * 24 * time.Hour)
			for range 20 {
				r := e.create(b, "bob", "web")
				if _, err := e.svc.Review(ctx, dave, r.ID, true, ""); err != nil {
					b.Fatal(err)
				}
			}
			if err := e.svc.Scan(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := e.svc.Scan(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
