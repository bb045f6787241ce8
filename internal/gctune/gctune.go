// Package gctune gives Go's garbage collector a floor of headroom in a
// long-running server whose heap is small.
//
// With the default GOGC=100 the next collection starts when the heap has
// grown by as much as is live. A bastion relaying a 1 GiB download with a
// 3-6 MiB live heap allocates a packet buffer per SSH packet (x/crypto/ssh
// copies every packet it reads) and so collects every few MiB, a couple of
// hundred times per GiB (measured: GOGC 400 instead of 100 saved 11% of the
// CPU per byte, 1600 another 6%). Run raises GOGC while the live heap
// is small so that a collection waits for at least floor bytes of garbage,
// and puts it back to 100 as the heap grows (a thousand sessions), so the
// memory a large bastion uses is what it was.
package gctune

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

const (
	defaultPercent = 100
	// maxPercent bounds how far GOGC goes up for a tiny heap. An idle
	// bastion's live heap is 3-6 MiB, which this still gives the whole
	// floor (with 400, the first cap, a bulk transfer collected every
	// ~20 MiB).
	maxPercent = 1600
	// every is how often the live heap is read. Between two readings the
	// heap may outgrow the setting; the next reading corrects it.
	every = time.Second
)

// Percent is the GOGC that leaves at least floor bytes of headroom above a
// live heap of live bytes, between 100 and maxPercent.
func Percent(live, floor uint64) int {
	if live == 0 {
		return maxPercent
	}
	p := floor * 100 / live
	switch {
	case p < defaultPercent:
		return defaultPercent
	case p > maxPercent:
		return maxPercent
	}
	return int(p)
}

// Run adjusts GOGC once a second until ctx ends, then restores it. It does
// nothing when the operator set GOGC or GOMEMLIMIT: their choice stands.
func Run(ctx context.Context, floor uint64, log *slog.Logger) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		log.Debug("gc tuning off: GOGC or GOMEMLIMIT set")
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := defaultPercent
	defer func() { debug.SetGCPercent(defaultPercent) }()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := Percent(sample[0].Value.Uint64(), floor); p != current {
				debug.SetGCPercent(p)
				current = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
