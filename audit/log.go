package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// DefaultMaxBatch bounds one group commit. Larger batches amortise the fsync
// further but make every caller in the batch wait for the slowest insert.
const DefaultMaxBatch = 1024

// Options configure a Log. The zero value is usable.
type Options struct {
	// Sink, if set, receives every committed event as one JSON line, in
	// sequence order, after the commit (audit.sink: stdout|FILE). A failing
	// sink is logged, never fails an append: the database is the record.
	Sink io.Writer
	// Logger receives sink and store failures; default slog.Default().
	Logger *slog.Logger
	// MaxBatch caps how many queued events go into one store transaction;
	// default DefaultMaxBatch.
	MaxBatch int
	// Now stamps events whose Time is zero; default time.Now.
	Now func() time.Time
	// Observer is told how long each append call took and whether it
	// failed (metrics); nil observes nothing.
	Observer Observer
}

// Observer watches append calls.
type Observer interface {
	AuditAppended(events int, d time.Duration, err error)
}

// Log appends events to the chain. It is safe for concurrent use: appends
// queue to one writer goroutine that commits everything queued so far in a
// single AppendEvents call, so N concurrent callers share one fsync instead
// of paying N.
type Log struct {
	store storage.AuditStore
	sink  io.Writer
	log   *slog.Logger
	max   int
	now   func() time.Time
	obs   Observer

	queue chan *pending
	done  chan struct{} // closed when the writer has drained and exited

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
}

type pending struct {
	ev     storage.Event
	fields []byte // canonical fields, computed by the caller's goroutine
	res    chan error
}

// New returns a Log writing to store and starts its writer goroutine; call
// Close to flush and stop it.
func New(store storage.AuditStore, opts Options) *Log {
	l := &Log{
		store: store,
		sink:  opts.Sink,
		log:   opts.Logger,
		max:   opts.MaxBatch,
		now:   opts.Now,
		obs:   opts.Observer,
		done:  make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.max <= 0 {
		l.max = DefaultMaxBatch
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.queue = make(chan *pending, l.max)
	go l.writer()
	return l
}

// Append adds ev to the chain and returns once it is durably stored (the
// store's commit returned). Time is set to now when zero. If ctx ends first
// Append returns ctx's error, but the event may still be committed: a queued
// event is never withdrawn, because the action it records may already have
// happened.
func (l *Log) Append(ctx context.Context, ev storage.Event) error {
	return l.AppendAll(ctx, ev)
}

// AppendAll appends evs in this order, one after the other in the chain
// (other callers' events may come between them), and returns once all are
// durable, or with the first error. Queued together they share a group
// commit, where Appends one after another would wait for one each.
func (l *Log) AppendAll(ctx context.Context, evs ...storage.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if l.obs == nil {
		return l.appendAll(ctx, evs)
	}
	start := time.Now()
	err := l.appendAll(ctx, evs)
	l.obs.AuditAppended(len(evs), time.Since(start), err)
	return err
}

func (l *Log) appendAll(ctx context.Context, evs []storage.Event) error {
	ps := make([]*pending, 0, len(evs))
	for _, ev := range evs {
		if ev.Type == "" {
			return errors.New("append audit event: empty type")
		}
		if ev.Time.IsZero() {
			ev.Time = l.now()
		}
		ev.Time = ev.Time.UTC().Round(0) // drop the monotonic reading; the hash uses wall time
		norm, fields, err := canonicalize(make([]byte, 0, 256), ev.Fields)
		if err != nil {
			return fmt.Errorf("append %s event: %w", ev.Type, err)
		}
		ev.Fields = norm
		ev.Seq, ev.PrevHash, ev.Hash = 0, nil, nil
		ps = append(ps, &pending{ev: ev, fields: fields, res: make(chan error, 1)})
	}

	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return fmt.Errorf("append %s event: %w", evs[0].Type, ErrClosed)
	}
	for i, p := range ps {
		select {
		case l.queue <- p:
		case <-ctx.Done():
			l.mu.RUnlock()
			// The events already queued are appended regardless; say
			// which was not.
			return fmt.Errorf("append %s event: %w", ps[i].ev.Type, ctx.Err())
		}
	}
	l.mu.RUnlock()
	var first error
	for _, p := range ps {
		select {
		case err := <-p.res:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			return fmt.Errorf("append %s event: waiting for commit: %w", p.ev.Type, ctx.Err())
		}
	}
	return first
}

// Close stops accepting events, commits everything already queued, and
// waits for the writer goroutine to finish. It does not close the store or
// the sink, which the caller owns.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	<-l.done
	return nil
}

// encodedAppender is implemented by stores that can store each event's
// fields as the canonical text Log sealed (storage/sqlite does). That
// spares the writer goroutine, which every append waits for, encoding the
// fields a second time.
type encodedAppender interface {
	AppendEncodedEvents(ctx context.Context, evs []storage.Event, fields [][]byte, seal func(*storage.Event) []byte) ([]storage.Event, error)
}

// writer is the single goroutine that talks to the store.
func (l *Log) writer() {
	defer close(l.done)
	enc, encoded := l.store.(encodedAppender)
	batch := make([]*pending, 0, l.max)
	evs := make([]storage.Event, 0, l.max)
	fields := make([][]byte, 0, l.max)
	buf := make([]byte, 0, 512)
	for first := range l.queue {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < l.max {
			select {
			case p, ok := <-l.queue:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		evs, fields = evs[:0], fields[:0]
		for _, p := range batch {
			evs = append(evs, p.ev)
			if len(p.ev.Fields) == 0 {
				fields = append(fields, nil) // stored as NULL, hashed as "{}"
			} else {
				fields = append(fields, p.fields)
			}
		}
		i := 0
		hashes := make([]byte, sha256.Size*len(batch)) // one allocation, not one per event
		seal := func(ev *storage.Event) []byte {
			// AppendEvents seals in order, one call per event; the
			// fields were canonicalised by the appending goroutine.
			buf = appendCanonical(buf[:0], ev, batch[i].fields)
			h := hashes[i*sha256.Size : (i+1)*sha256.Size : (i+1)*sha256.Size]
			i++
			sum := sha256.Sum256(buf)
			copy(h, sum[:])
			return h
		}
		// Background context: a batch holds other callers' events too, and
		// an event whose action already happened must still be recorded.
		var out []storage.Event
		var err error
		if encoded {
			out, err = enc.AppendEncodedEvents(context.Background(), evs, fields, seal)
		} else {
			out, err = l.store.AppendEvents(context.Background(), evs, seal)
		}
		if err == nil && i != len(batch) {
			err = fmt.Errorf("store sealed %d of %d events", i, len(batch))
		}
		if err != nil {
			l.log.Error("audit append failed", "events", len(batch), "err", err)
			err = fmt.Errorf("append audit events: %w", err)
		}
		for _, p := range batch {
			p.res <- err
		}
		if err == nil && l.sink != nil {
			l.writeSink(out)
		}
		clear(batch) // let the GC have the events
		clear(evs)
		clear(fields)
	}
}

// writeSink writes one batch as JSON lines in a single Write, so a log
// shipper tailing a file never sees half a batch interleaved with another.
func (l *Log) writeSink(evs []storage.Event) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			l.log.Error("audit sink: encode event", "seq", evs[i].Seq, "err", err)
			return
		}
	}
	if _, err := l.sink.Write(buf.Bytes()); err != nil {
		l.log.Error("audit sink write failed", "first_seq", evs[0].Seq, "events", len(evs), "err", err)
	}
}

// Prune deletes events older than maxAge (retention). The store moves its
// anchor to the last deleted event, so Verify still passes afterwards.
func (l *Log) Prune(ctx context.Context, maxAge time.Duration) (int64, error) {
	if maxAge <= 0 {
		return 0, fmt.Errorf("prune audit log: max age must be positive, got %s", maxAge)
	}
	before := l.now().Add(-maxAge)
	n, err := l.store.PruneEvents(ctx, before)
	if err != nil {
		return 0, fmt.Errorf("prune audit events before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	if n > 0 {
		l.log.Info("audit log pruned", "events", n, "before", before)
	}
	return n, nil
}
