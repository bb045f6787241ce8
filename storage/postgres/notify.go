package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen tuning. Backoff doubles from listenMinBackoff to listenMaxBackoff
// with jitter, so a fleet of bastions does not reconnect in lockstep after a
// database restart. An idle connection is pinged every listenIdleCheck
// because a silently dropped TCP connection (no RST) would otherwise leave
// WaitForNotification blocked forever.
const (
	listenMinBackoff   = 50 * time.Millisecond
	listenMaxBackoff   = 5 * time.Second
	listenIdleCheck    = 30 * time.Second
	listenConnTimeout  = 10 * time.Second
	listenBuffer       = 64
	listenCloseTimeout = 2 * time.Second
)

// ErrClosed is returned by Listen after Close.
var ErrClosed = errors.New("postgres store closed")

// Notify sends payload to every Listen on channel, in this and every other
// bastion sharing the database. PostgreSQL delivers it only when the
// sending transaction commits (here: at once) and limits payloads to under
// 8000 bytes, so send identifiers ("request 123 changed"), not data. An
// empty payload is what Listen delivers after a reconnect, so give it the
// meaning "re-check everything" if you send it yourself.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify channel %q: %w", channel, err)
	}
	return nil
}

// Listen subscribes to channel and returns the payloads sent to it with
// Notify. The subscription is active when Listen returns, so a Notify that
// starts after that is delivered.
//
// Listen uses a dedicated connection and, when that connection drops (the
// database restarts, the network fails), reconnects by itself with backoff.
// Notifications sent while it was disconnected are lost; PostgreSQL does
// not queue them for absent listeners. After every reconnect the channel
// therefore receives an empty payload, meaning "you may have missed
// something, re-check now". Even so, callers must treat notifications as
// hints that make changes visible sooner and keep a periodic re-check of
// whatever they watch (locks, grants, request states) as the safety net.
//
// The returned channel is closed when ctx is done or the Store is closed.
// A slow reader delays delivery but loses nothing while connected:
// PostgreSQL buffers the backlog server-side.
func (s *Store) Listen(ctx context.Context, channel string) (<-chan string, error) {
	// Register before connecting so Close waits for this listener too; the
	// mutex orders the registration against Close's Wait.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("listen on channel %q: %w", channel, ErrClosed)
	}
	s.listeners.Add(1)
	s.mu.Unlock()

	conn, err := s.listenConn(ctx, channel)
	if err != nil {
		s.listeners.Done()
		return nil, fmt.Errorf("listen on channel %q: %w", channel, err)
	}
	out := make(chan string, listenBuffer)
	lctx, cancel := context.WithCancel(ctx)
	stopWatch := context.AfterFunc(s.life, cancel)
	go func() {
		defer s.listeners.Done()
		defer close(out)
		defer stopWatch()
		defer cancel()
		s.listenLoop(lctx, channel, conn, out)
	}()
	return out, nil
}

// listenConn opens a connection outside the pool and subscribes it.
func (s *Store) listenConn(ctx context.Context, channel string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, listenConnTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, s.connConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	// LISTEN takes an identifier, not a parameter, hence the quoting.
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		closeConn(ctx, conn)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return conn, nil
}

// listenLoop delivers notifications from conn, replacing conn whenever it
// fails, until ctx is done.
func (s *Store) listenLoop(ctx context.Context, channel string, conn *pgx.Conn, out chan<- string) {
	for {
		err := pump(ctx, conn, out, s.listenIdle)
		closeConn(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres listen connection lost, reconnecting", "channel", channel, "err", err)
		conn = s.reconnect(ctx, channel)
		if conn == nil {
			return
		}
		s.log.Info("postgres listen reconnected", "channel", channel)
		select {
		case out <- "": // see Listen: "re-check now"
		case <-ctx.Done():
			closeConn(ctx, conn)
			return
		}
	}
}

// pump forwards notifications until the connection fails or ctx is done.
func pump(ctx context.Context, conn *pgx.Conn, out chan<- string, idleCheck time.Duration) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, idleCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Only our idle timer fired: the connection is intact (pgx
			// keeps it open on timeouts), so check the server still answers.
			if errors.Is(err, context.DeadlineExceeded) || pgconnTimeout(err) {
				pctx, cancel := context.WithTimeout(ctx, listenConnTimeout)
				err = conn.Ping(pctx)
				cancel()
				if err != nil {
					return fmt.Errorf("ping idle listen connection: %w", err)
				}
				continue
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		select {
		case out <- n.Payload:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pgconnTimeout reports whether err is a timeout: pgx reports a deadline hit
// inside a read as a net.Error rather than context.DeadlineExceeded.
func pgconnTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// reconnect retries listenConn with jittered exponential backoff until it
// succeeds (returning the conn) or ctx is done (returning nil).
func (s *Store) reconnect(ctx context.Context, channel string) *pgx.Conn {
	backoff := listenMinBackoff
	for attempt := 1; ; attempt++ {
		// Sleep between backoff/2 and backoff.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		conn, err := s.listenConn(ctx, channel)
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Debug("postgres listen reconnect failed", "channel", channel, "attempt", attempt, "err", err)
		backoff = min(backoff*2, listenMaxBackoff)
	}
}

// closeConn closes conn on a bounded context that survives ctx's
// cancellation, since closing is exactly what a cancelled listener does.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenCloseTimeout)
	defer cancel()
	_ = conn.Close(cctx)
}
