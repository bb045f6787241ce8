package proxy

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/config"
)

// liveConn is one terminated jump: a user on a login on a node. Policy is
// re-checked against it whenever something changes; it is closed with a
// notice when the decision no longer holds.
type liveConn struct {
	id      string
	ident   Identity
	login   string
	node    config.Node
	start   time.Time
	remote  string
	inner   *ssh.ServerConn
	verdict Verdict

	// innerAuth is the method the client used on the inner connection
	// (audit only; the identity is ident, from the outer connection).
	innerAuth innerAuth

	// ctx ends when the connection is terminated, with the UserError
	// its users are told as the cause; end cancels it.
	ctx context.Context
	end context.CancelCauseFunc

	mu       sync.Mutex
	closed   bool
	channels map[string]*liveChannel // session id -> channel
}

// liveChannel is one recorded session channel inside a liveConn.
type liveChannel struct {
	id    string
	ch    ssh.Channel
	watch *broadcaster

	// delivered is closed once the channel's relay has delivered a
	// termination notice or ended.
	delivered     chan struct{}
	deliveredOnce sync.Once

	// kind and command are what the channel runs, known once its start
	// request arrives; the owning liveConn's mu guards them (Live reads
	// them while sessions start).
	kind, command string

	// eofMu orders our own messages on stderr (a termination notice, a
	// refusal) against the relay's CloseWrite: x/crypto sets and reads a
	// channel's EOF flag without a lock, so a Write racing CloseWrite is
	// a data race. The relay's data writes need no lock: they all end
	// before its CloseWrite.
	eofMu sync.Mutex
}

// writeStderr writes msg to the client's stderr unless EOF was sent.
func (lc *liveChannel) writeStderr(msg string) {
	lc.eofMu.Lock()
	defer lc.eofMu.Unlock()
	_, _ = lc.ch.Stderr().Write([]byte(msg))
}

// closeWrite sends EOF to the client.
func (lc *liveChannel) closeWrite() error {
	lc.eofMu.Lock()
	defer lc.eofMu.Unlock()
	return lc.ch.CloseWrite()
}

func (c *liveConn) addChannel(lc *liveChannel) {
	c.mu.Lock()
	c.channels[lc.id] = lc
	c.mu.Unlock()
}

// describe records what channel lc runs, for Live.
func (c *liveConn) describe(lc *liveChannel, kind, command string) {
	c.mu.Lock()
	lc.kind, lc.command = kind, command
	c.mu.Unlock()
}

func (c *liveConn) removeChannel(id string) {
	c.mu.Lock()
	delete(c.channels, id)
	c.mu.Unlock()
}

func (c *liveConn) setVerdict(v Verdict) {
	c.mu.Lock()
	c.verdict = v
	c.mu.Unlock()
}

func (c *liveConn) currentVerdict() Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verdict
}

// terminate ends the connection with why: it cancels the connection's
// context with why as the cause, and each session channel's relay
// delivers why's line (see deliverNotice); then the connection closes. It
// reports whether this call ended it: only the first does.
func (c *liveConn) terminate(why *UserError) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	c.mu.Unlock()
	c.end(why)
	return true
}

// closeAfterNotices closes the connection once every session channel has
// delivered its termination notice, or after noticeTimeout: a client
// that stopped reading (a full channel window) must not hold back the
// close, which is what a revocation is for. The notices went out on the
// connection before its close, so the client reads them first.
func (c *liveConn) closeAfterNotices() {
	c.mu.Lock()
	chans := make([]*liveChannel, 0, len(c.channels))
	for _, lc := range c.channels {
		chans = append(chans, lc)
	}
	c.mu.Unlock()
	t := time.NewTimer(noticeTimeout)
	defer t.Stop()
	for _, lc := range chans {
		select {
		case <-lc.delivered:
		case <-t.C:
			_ = c.inner.Close()
			return
		}
	}
	_ = c.inner.Close()
}

// deliverNotice tells the channel's client why its connection ended, if
// it was ended by terminate, and asks the client to close with exit
// status 255. No CloseWrite here: the relay sends EOF once the node's side
// is gone.
func (lc *liveChannel) deliverNotice(cause error) {
	defer lc.markDelivered()
	var why *UserError
	if !errors.As(cause, &why) {
		return // the connection went away on its own: nobody to tell
	}
	lc.writeStderr("\r\n" + why.Line + "\r\n")
	_, _ = lc.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ S uint32 }{255}))
}

func (lc *liveChannel) markDelivered() { lc.deliveredOnce.Do(func() { close(lc.delivered) }) }

// noticeTimeout bounds how long a termination waits for its notices to be
// delivered before it closes the connection anyway.
const noticeTimeout = time.Second

// registry holds every live connection of this bastion.
type registry struct {
	mu    sync.Mutex
	conns map[string]*liveConn
}

func newRegistry() *registry { return &registry{conns: map[string]*liveConn{}} }

func (r *registry) add(c *liveConn) {
	r.mu.Lock()
	r.conns[c.id] = c
	r.mu.Unlock()
}

func (r *registry) remove(id string) {
	r.mu.Lock()
	delete(r.conns, id)
	r.mu.Unlock()
}

func (r *registry) snapshot() []*liveConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*liveConn, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// channel finds a live session channel by its session id.
func (r *registry) channel(id string) (*liveConn, *liveChannel, bool) {
	for _, c := range r.snapshot() {
		c.mu.Lock()
		lc, ok := c.channels[id]
		c.mu.Unlock()
		if ok {
			return c, lc, true
		}
	}
	return nil, nil, false
}

// closeAll terminates every live connection and reports how many it
// terminated.
func (r *registry) closeAll(why *UserError) int {
	n := 0
	for _, c := range r.snapshot() {
		if c.terminate(why) {
			n++
		}
	}
	return n
}

// broadcaster fans a live session's output out to watchers (`join`). A slow
// watcher loses data rather than slowing the session down. It keeps the
// last replayBytes of output so that a new watcher starts on the screen the
// user sees, not on a blank terminal waiting for the next output.
type broadcaster struct {
	mu       sync.Mutex
	watchers map[chan []byte]struct{}
	// recent is the last replayBytes of output at most: it grows with
	// the output, and once full is written round from head, so keeping
	// it costs one copy of each write and no allocation.
	recent []byte
	head   int
}

// replayBytes bounds the output a new watcher is sent first: enough for a
// full screen of a busy terminal, small enough to keep for every session.
const replayBytes = 32 << 10

func newBroadcaster() *broadcaster { return &broadcaster{watchers: map[chan []byte]struct{}{}} }

func (b *broadcaster) write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keep(p)
	if len(b.watchers) == 0 {
		return
	}
	cp := append([]byte(nil), p...)
	for w := range b.watchers {
		select {
		case w <- cp:
		default:
		}
	}
}

// keep adds p to the recent output; mu is held.
func (b *broadcaster) keep(p []byte) {
	if len(p) > replayBytes {
		p = p[len(p)-replayBytes:]
	}
	if n := min(len(p), replayBytes-len(b.recent)); n > 0 {
		b.recent = append(b.recent, p[:n]...)
		p = p[n:]
	}
	for len(p) > 0 {
		n := copy(b.recent[b.head:], p)
		p = p[n:]
		b.head = (b.head + n) % replayBytes
	}
}

// subscribe adds a watcher whose channel starts with the recent output,
// queued under the same lock as later writes so nothing is lost or doubled
// between the two.
func (b *broadcaster) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 256)
	b.mu.Lock()
	if len(b.recent) > 0 {
		ch <- append(append(make([]byte, 0, len(b.recent)), b.recent[b.head:]...), b.recent[:b.head]...)
	}
	b.watchers[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.watchers, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

func (b *broadcaster) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.watchers {
		delete(b.watchers, w)
		close(w)
	}
}
