package proxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// gateWriter blocks every Write until the test opens the gate, and keeps
// what it was given.
type gateWriter struct {
	mu     sync.Mutex
	got    bytes.Buffer
	writes int
	open   chan struct{}
	err    error
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	g.writes++
	return g.got.Write(p)
}

func (g *gateWriter) bytes() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Clone(g.got.Bytes())
}

func TestQueuedWriterKeepsOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes func(r *rand.Rand) int
	}{
		{"keystrokes", func(r *rand.Rand) int { return 1 + r.IntN(8) }},
		{"ssh packets", func(r *rand.Rand) int { return []int{4096, 28 * 1024, 32*1024 + 25, 52}[r.IntN(4)] }},
		{"larger than the bound", func(r *rand.Rand) int { return queueMax + 1 + r.IntN(queueMax) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			fill := rand.NewChaCha8([32]byte{7})
			g := &gateWriter{open: make(chan struct{})}
			close(g.open)
			q := newQueuedWriter(g)
			var want bytes.Buffer
			for i := 0; i < 300; i++ {
				p := make([]byte, tc.sizes(r))
				_, _ = fill.Read(p)
				want.Write(p)
				n, err := q.Write(p)
				if n != len(p) || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
				}
				// The queue copied p: changing it now must not change what is written.
				for j := range p {
					p[j] = 0xAA
				}
			}
			if err := q.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := g.bytes(); !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("wrote %d bytes, want %d, or they differ", len(got), want.Len())
			}
		})
	}
}

// A stalled writer makes Write wait once the bound is queued; nothing is
// lost, and writes made meanwhile go out joined.
func TestQueuedWriterBackpressure(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	q := newQueuedWriter(g)
	chunk := bytes.Repeat([]byte("x"), 16*1024)
	done := make(chan int)
	go func() {
		n := 0
		for i := 0; i < 4*queueMax/len(chunk); i++ {
			if _, err := q.Write(chunk); err != nil {
				break
			}
			n += len(chunk)
		}
		done <- n
	}()
	// The drain goroutine holds the first chunk (its Write is stalled), so
	// queueMax more may queue and then Write must wait.
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		queued := 0
		if q.buf != nil {
			queued = len(*q.buf)
		}
		q.mu.Unlock()
		if queued >= queueMax {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued %d bytes, want the bound %d", queued, queueMax)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case n := <-done:
		t.Fatalf("all %d bytes taken by a writer that wrote nothing", n)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.open)
	n := <-done
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := len(g.bytes()); got != n || n != 4*queueMax {
		t.Fatalf("wrote %d of %d bytes (want %d)", got, n, 4*queueMax)
	}
	if g.writes >= n/len(chunk) {
		t.Errorf("%d writes for %d chunks: queued chunks were not joined", g.writes, n/len(chunk))
	}
}

func TestQueuedWriterReportsError(t *testing.T) {
	boom := errors.New("boom")
	g := &gateWriter{open: make(chan struct{}), err: boom}
	close(g.open)
	q := newQueuedWriter(g)
	if _, err := q.Write([]byte("first")); err != nil {
		t.Fatalf("first Write: %v (queued: the error is not known yet)", err)
	}
	if err := q.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if _, err := q.Write([]byte("second")); !errors.Is(err, boom) {
		t.Fatalf("Write after the failure = %v, want %v", err, boom)
	}
}

// FlushTimeout gives up on a peer that stopped reading; Flush waits.
func TestQueuedWriterFlushTimeout(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	q := newQueuedWriter(g)
	stuck := []byte("stuck")
	if _, err := q.Write(stuck); err != nil {
		t.Fatal(err)
	}
	if q.FlushTimeout(20 * time.Millisecond) {
		t.Fatal("FlushTimeout reported a drained queue while the writer is stalled")
	}
	close(g.open)
	if !q.FlushTimeout(5 * time.Second) {
		t.Fatal("FlushTimeout did not see the queue drain")
	}
	if !bytes.Equal(g.bytes(), stuck) {
		t.Fatalf("wrote %d bytes, want %d", len(g.bytes()), len(stuck))
	}
}

// An idle queue holds no goroutine and no buffer.
func TestQueuedWriterIdleHoldsNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	var qs []*queuedWriter
	for i := 0; i < 100; i++ {
		q := newQueuedWriter(io.Discard)
		if _, err := q.Write(bytes.Repeat([]byte("y"), 40*1024)); err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	for _, q := range qs {
		if err := q.Flush(); err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		if q.buf != nil || q.draining {
			t.Errorf("idle queue holds a buffer (%v) or a drain (%v)", q.buf != nil, q.draining)
		}
		q.mu.Unlock()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after the queues drained, %d before", n, before)
	}
}

// A batching queue (startAt) writes nothing until enough is queued or it is
// flushed, never waits forever on a batch below its threshold, and keeps
// every byte in order.
func TestQueuedWriterBatches(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	close(g.open)
	q := newQueuedWriter(g)
	q.startAt = queueMax * 3 / 4
	var want bytes.Buffer
	write := func(n int) {
		t.Helper()
		p := bytes.Repeat([]byte{byte(want.Len())}, n)
		want.Write(p)
		done := make(chan error, 1)
		go func() { _, err := q.Write(p); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Write of %d bytes with %d queued never returned", n, want.Len()-n)
		}
	}
	write(1000)
	time.Sleep(20 * time.Millisecond)
	if n := len(g.bytes()); n != 0 {
		t.Fatalf("%d bytes written below the threshold", n)
	}
	write(queueMax/2 + 1000) // still below startAt
	write(queueMax / 2)      // would overflow the bound: must start the drain, not wait forever
	write(10)
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := g.bytes(); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("wrote %d bytes, want %d in order", len(got), want.Len())
	}
	if g.writes > 3 {
		t.Errorf("%d writes for 4 chunks: not batched", g.writes)
	}
}
