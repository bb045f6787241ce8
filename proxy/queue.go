package proxy

import (
	"io"
	"net"
	"sync"
	"time"
)

// queueMax bounds the bytes a queuedWriter holds before Write waits: four
// full SSH packets, enough to keep the next stage busy.
const queueMax = 128 * 1024

// queueBufs recycles queue buffers: a queue holds one only while bytes are
// in flight, so a thousand idle sessions hold none.
var queueBufs = sync.Pool{New: func() any { b := make([]byte, 0, queueMax+relayBufSize); return &b }}

// queuedWriter hands writes to a goroutine of its own, so that the goroutine
// calling Write goes on with the next chunk while the last one is written.
// On a download the relay goroutine otherwise did all the work of a byte in
// series: encrypt it for the inner connection, encrypt that again for the
// outer one, two or three socket writes per packet, and SHA-256 if it is
// binary output; one core's worth of that capped throughput. Queued, the
// socket writes (queuedConn) and the hash (binaryStream) run beside it.
//
// Bytes are written in order, each Write's bytes exactly once unless the
// underlying writer fails; a Write waits while queueMax bytes are queued
// (backpressure, never dropping). The draining goroutine exists only while
// bytes are queued. After the underlying writer fails, Write returns that
// error.
type queuedWriter struct {
	w io.Writer
	// startAt is how many bytes must be queued before a drain starts
	// (Flush starts one whatever is queued). 0 writes at once; a writer
	// nobody waits on, like a hash, batches instead, so the drain goroutine
	// is woken once per few chunks rather than for every one.
	startAt int

	mu       sync.Mutex
	cond     *sync.Cond // room freed, or the drain ended
	buf      *[]byte    // bytes not yet handed to the drain goroutine
	draining bool
	err      error
}

func newQueuedWriter(w io.Writer) *queuedWriter {
	q := &queuedWriter{w: w}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queuedWriter) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.err == nil && q.buf != nil && len(*q.buf) > 0 && len(*q.buf)+len(p) > queueMax {
		q.startDrainLocked() // a batch below startAt must not wait forever
		q.cond.Wait()
	}
	if q.err != nil {
		return 0, q.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if q.buf == nil {
		q.buf = queueBufs.Get().(*[]byte)
	}
	*q.buf = append(*q.buf, p...)
	if len(*q.buf) >= q.startAt {
		q.startDrainLocked()
	}
	return len(p), nil
}

func (q *queuedWriter) startDrainLocked() {
	if !q.draining && q.buf != nil && len(*q.buf) > 0 {
		q.draining = true
		go q.drain()
	}
}

// drain writes queued bytes until none are left, then ends. The batch
// being written is not in q.buf, so producers fill the other buffer
// meanwhile and the next write carries everything they queued.
func (q *queuedWriter) drain() {
	var spare *[]byte
	q.mu.Lock()
	for q.err == nil && q.buf != nil && len(*q.buf) > 0 {
		batch := q.buf
		q.buf = spare
		if q.buf != nil {
			*q.buf = (*q.buf)[:0]
		}
		q.cond.Broadcast()
		q.mu.Unlock()
		_, err := q.w.Write(*batch)
		q.mu.Lock()
		if err != nil && q.err == nil {
			q.err = err
		}
		spare = batch
	}
	for _, b := range []*[]byte{spare, q.buf} {
		if b != nil && cap(*b) <= 2*(queueMax+relayBufSize) {
			*b = (*b)[:0]
			queueBufs.Put(b)
		}
	}
	q.buf = nil
	q.draining = false
	q.cond.Broadcast()
	q.mu.Unlock()
}

// Flush waits until every queued byte is written or writing failed, and
// returns the writer's error.
func (q *queuedWriter) Flush() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.startDrainLocked()
	for q.draining {
		q.cond.Wait()
	}
	return q.err
}

// FlushTimeout is Flush that gives up after d (a peer that stopped reading
// must not hold a close forever); it reports whether the queue drained.
func (q *queuedWriter) FlushTimeout(d time.Duration) bool {
	done := make(chan struct{})
	go func() { _ = q.Flush(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// closeFlushTimeout is how long Close waits for queued bytes to reach a
// peer that may have stopped reading.
const closeFlushTimeout = 2 * time.Second

// queuedConn is a network connection whose writes go through a
// queuedWriter. x/crypto/ssh writes every packet as two or three small
// socket writes (its 4 KiB write buffer); queued, they leave as one write
// per batch, and the socket write (on loopback, most of a write's cost is
// delivering it) runs beside the encryption of the next packet.
type queuedConn struct {
	net.Conn
	q *queuedWriter
}

func newQueuedConn(c net.Conn) *queuedConn { return &queuedConn{Conn: c, q: newQueuedWriter(c)} }

func (c *queuedConn) Write(p []byte) (int, error) { return c.q.Write(p) }

// Close sends what is queued (a disconnect message, the last channel
// messages) before it closes the connection.
func (c *queuedConn) Close() error {
	c.q.FlushTimeout(closeFlushTimeout)
	return c.Conn.Close()
}
