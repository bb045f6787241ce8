package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Report is the outcome of Verify.
type Report struct {
	Events   int64  `json:"events"`    // events checked and found intact
	FirstSeq int64  `json:"first_seq"` // first stored event (anchor.Seq+1 when intact)
	LastSeq  int64  `json:"last_seq"`  // last intact event
	OK       bool   `json:"ok"`
	BadSeq   int64  `json:"bad_seq,omitempty"` // first sequence number found wrong
	Problem  string `json:"problem,omitempty"`
}

// rawFunc receives one stored event as its stored bytes: seq, time in Unix
// nanoseconds, then type, actor, target, outcome, fields (nil when NULL),
// prev_hash and hash, valid only during the call.
type rawFunc = func(seq, unixNano int64, typ, actor, target, outcome, fields, prevHash, hash []byte) error

// rangeWalker is implemented by stores that can walk a range of the chain
// as stored bytes (storage/sqlite does). Decoding fields and building
// events would cost more than hashing them, and ranges let several CPUs
// verify one chain.
type rangeWalker interface {
	WalkEventsRaw(ctx context.Context, from, to int64, fn rawFunc) error
}

// errStop ends a walk at the first problem.
var errStop = errors.New("stop")

const (
	// minParallel is the chain length from which Verify splits the work.
	minParallel = 4096
	// segmentsPerCPU: with several ranges per CPU, a CPU slowed down by
	// other work on the machine costs the others only a range's time at
	// the end, not half of the chain.
	segmentsPerCPU = 4
	// minSegment keeps a range's fixed cost (a read transaction, a
	// prepared query) small next to its events.
	minSegment = 1024
)

// Verify walks the chain from the store's anchor and checks, for every
// event in order, that its sequence number is the next one, that PrevHash is
// the previous event's Hash, and that Hash matches its content. It reports
// the first problem by sequence number: an edited event fails its own hash;
// a deleted one leaves a gap; an inserted or moved one breaks the link to
// its predecessor or fails its hash because its seq changed. An error means
// the store could not be read, not that the chain is bad.
//
// Events appended while Verify runs are not checked. If retention prunes
// while Verify runs and a problem shows at the start of the chain, Verify
// starts over from the new anchor rather than report a false gap.
func Verify(ctx context.Context, store storage.AuditStore) (Report, error) {
	for attempt := 0; ; attempt++ {
		anchor, err := store.AuditAnchor(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain: read anchor: %w", err)
		}
		rep, err := verifyFrom(ctx, store, anchor)
		if err != nil || rep.OK || attempt == 2 {
			return rep, err
		}
		now, err := store.AuditAnchor(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain: read anchor: %w", err)
		}
		if now.Seq == anchor.Seq {
			return rep, nil
		}
	}
}

// segmentBounds cuts the chain first..last into the ranges Verify checks
// independently with workers goroutines.
func segmentBounds(first, last int64, workers int) [][2]int64 {
	total := last - first + 1
	if total < minParallel {
		return [][2]int64{{first, last}}
	}
	parts := int64(max(1, workers) * segmentsPerCPU)
	size := max(minSegment, (total+parts-1)/parts)
	var b [][2]int64
	for lo := first; lo <= last; lo += size {
		b = append(b, [2]int64{lo, min(lo+size-1, last)})
	}
	return b
}

func verifyFrom(ctx context.Context, store storage.AuditStore, anchor storage.Anchor) (Report, error) {
	first := anchor.Seq + 1
	var segs []*segment
	rw, ranged := store.(rangeWalker)
	workers := runtime.GOMAXPROCS(0)
	if ranged {
		newest, err := store.ListEvents(ctx, storage.EventFilter{Newest: true, Limit: 1})
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain: find newest event: %w", err)
		}
		if len(newest) == 0 {
			return Report{OK: true}, nil
		}
		for _, b := range segmentBounds(first, newest[0].Seq, workers) {
			segs = append(segs, &segment{lo: b[0], hi: b[1]})
		}
	} else {
		segs = []*segment{{lo: first}}
	}

	// Workers take the ranges in order. Once a range has found a problem,
	// ranges after it are skipped: only the first problem is reported.
	errs := make([]error, len(segs))
	var next atomic.Int64
	var failed atomic.Int64
	failed.Store(math.MaxInt64)
	var wg sync.WaitGroup
	for range min(workers, len(segs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(segs)); i = next.Add(1) - 1 {
				if i > failed.Load() {
					continue
				}
				sg := segs[i]
				sg.want = sg.lo
				var err error
				if ranged {
					err = rw.WalkEventsRaw(ctx, sg.lo, sg.hi, sg.stepRaw)
				} else {
					err = store.WalkEvents(ctx, func(ev storage.Event) error { return sg.step(&ev) })
				}
				if err != nil && !errors.Is(err, errStop) {
					errs[i] = err
					continue
				}
				sg.finish()
				if sg.badSeq == 0 {
					continue
				}
				for f := failed.Load(); i < f; f = failed.Load() { // failed = min(failed, i)
					if failed.CompareAndSwap(f, i) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Report{}, fmt.Errorf("verify audit chain: %w", err)
	}

	// Stitch the segments: each must start where the previous one ended.
	rep := Report{FirstSeq: segs[0].firstSeq}
	prev := anchor.Hash
	for _, sg := range segs {
		if sg.n > 0 && !bytes.Equal(sg.firstPrev, prev) {
			if sg.lo == first && anchor.Seq > 0 {
				rep.BadSeq, rep.Problem = sg.lo, fmt.Sprintf("event %d does not link to the retention anchor (pruned events tampered with?)", sg.lo)
			} else {
				rep.BadSeq, rep.Problem = sg.lo, fmt.Sprintf("event %d does not link to event %d (inserted, removed or reordered?)", sg.lo, sg.lo-1)
			}
			break
		}
		if sg.badSeq != 0 {
			rep.BadSeq, rep.Problem = sg.badSeq, sg.problem
			break
		}
		prev = sg.lastHash
		rep.LastSeq = sg.lastSeq
	}
	if rep.BadSeq != 0 {
		rep.LastSeq = max(0, rep.BadSeq-1)
		if rep.LastSeq <= anchor.Seq {
			rep.LastSeq = 0
		}
	}
	if rep.LastSeq > 0 {
		rep.Events = rep.LastSeq - anchor.Seq
	}
	rep.OK = rep.Problem == ""
	return rep, nil
}

// segment verifies the events lo..hi (hi 0: to the end) in isolation; the
// link into its first event is checked when segments are stitched.
type segment struct {
	lo, hi int64

	want      int64
	n         int64
	firstSeq  int64
	firstPrev []byte
	lastSeq   int64
	lastHash  []byte
	badSeq    int64
	problem   string

	buf      []byte   // the hashed bytes of the current event
	fields   []byte   // canonical fields, on the decoded path
	noFields []byte   // "{}", what NULL fields are hashed as
	ts       timeText // time formatting, for the raw path
}

func (sg *segment) fail(seq int64, format string, args ...any) error {
	sg.badSeq, sg.problem = seq, fmt.Sprintf(format, args...)
	return errStop
}

// link checks that seq is the next event of the segment and that prev
// links it to the one before.
func (sg *segment) link(seq int64, prev []byte) error {
	if sg.n == 0 && sg.firstSeq == 0 {
		sg.firstSeq = seq
	}
	switch {
	case seq == sg.want+1:
		return sg.fail(sg.want, "event %d is missing (deleted?): %d follows %d", sg.want, seq, sg.want-1)
	case seq > sg.want:
		return sg.fail(sg.want, "events %d to %d are missing (deleted?): %d follows %d", sg.want, seq-1, seq, sg.want-1)
	case seq < sg.want:
		return sg.fail(seq, "event %d is out of order: found after %d", seq, sg.want-1)
	}
	if sg.n == 0 {
		sg.firstPrev = bytes.Clone(prev)
	} else if !bytes.Equal(prev, sg.lastHash) {
		return sg.fail(seq, "event %d does not link to event %d (inserted, removed or reordered?)", seq, seq-1)
	}
	return nil
}

// accept records an intact event. The hash is copied: a raw walk's bytes
// are only valid during the call.
func (sg *segment) accept(seq int64, hash []byte) {
	sg.n++
	sg.lastSeq, sg.lastHash = seq, append(sg.lastHash[:0], hash...)
	sg.want = seq + 1
}

// step checks one decoded event: its fields are encoded canonically and
// the event hashed.
func (sg *segment) step(ev *storage.Event) error {
	if err := sg.link(ev.Seq, ev.PrevHash); err != nil {
		return err
	}
	if err := sg.checkDecoded(ev); err != nil {
		return err
	}
	sg.accept(ev.Seq, ev.Hash)
	return nil
}

func (sg *segment) checkDecoded(ev *storage.Event) error {
	fields, err := appendCanonicalFields(sg.fields[:0], ev.Fields)
	if err != nil {
		return sg.fail(ev.Seq, "event %d: fields cannot be encoded: %v", ev.Seq, err)
	}
	sg.fields = fields
	sg.buf = appendCanonical(sg.buf[:0], ev, fields)
	if sum := sha256.Sum256(sg.buf); !bytes.Equal(sum[:], ev.Hash) {
		return sg.fail(ev.Seq, "event %d does not match its hash (edited?)", ev.Seq)
	}
	return nil
}

// stepRaw checks one event as stored. The stored fields text is hashed as
// is: Log stores exactly the canonical text it sealed. Only if that does
// not match (fields written some other way, by hand or by another store)
// are the fields decoded and re-encoded canonically before the event is
// called edited.
func (sg *segment) stepRaw(seq, unixNano int64, typ, actor, target, outcome, fields, prev, hash []byte) error {
	if err := sg.link(seq, prev); err != nil {
		return err
	}
	f := fields
	if f == nil {
		if sg.noFields == nil {
			sg.noFields = []byte("{}")
		}
		f = sg.noFields
	}
	var ts [40]byte
	sg.buf = appendCanonicalParts(sg.buf[:0], seq, sg.ts.append(ts[:0], unixNano), typ, actor, target, outcome, f, prev)
	if sum := sha256.Sum256(sg.buf); !bytes.Equal(sum[:], hash) {
		ev := storage.Event{Seq: seq, Time: time.Unix(0, unixNano).UTC(), Type: string(typ), Actor: string(actor),
			Target: string(target), Outcome: string(outcome), PrevHash: prev, Hash: hash}
		if fields != nil {
			m, err := decodeFields(fields)
			if err != nil {
				return sg.fail(seq, "event %d: stored fields are not valid JSON (edited?)", seq)
			}
			ev.Fields = m
		}
		if err := sg.checkDecoded(&ev); err != nil {
			return err
		}
	}
	sg.accept(seq, hash)
	return nil
}

// finish notices events missing at the end of a bounded segment, which no
// later event of the same segment would reveal.
func (sg *segment) finish() {
	if sg.badSeq != 0 || sg.hi == 0 || sg.want > sg.hi {
		return
	}
	if sg.want == sg.hi {
		sg.fail(sg.want, "event %d is missing (deleted?)", sg.want)
	} else {
		sg.fail(sg.want, "events %d to %d are missing (deleted?)", sg.want, sg.hi)
	}
}
