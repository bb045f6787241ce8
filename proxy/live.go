package proxy

import (
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

	mu       sync.Mutex
	closed   bool
	channels map[string]*liveChannel // session id -> channel
}

// liveChannel is one recorded session channel inside a liveConn.
type liveChannel struct {
	id      string
	kind    string
	command string
	ch      ssh.Channel
	watch   *broadcaster
}

func (c *liveConn) addChannel(lc *liveChannel) {
	c.mu.Lock()
	c.channels[lc.id] = lc
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

// terminate writes notice to every open session channel's stderr and closes
// the connection. Safe to call more than once.
func (c *liveConn) terminate(notice string) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	chans := make([]*liveChannel, 0, len(c.channels))
	for _, lc := range c.channels {
		chans = append(chans, lc)
	}
	c.mu.Unlock()
	for _, lc := range chans {
		_, _ = lc.ch.Stderr().Write([]byte("\r\n" + notice + "\r\n"))
		// Ask the client to close so the notice is shown before the
		// transport goes away.
		// No CloseWrite here: the relay may be writing to this channel,
		// and x/crypto's EOF flag is not safe against concurrent writes.
		_, _ = lc.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ S uint32 }{255}))
	}
	go func() {
		// Give the client a moment to print the notice, then cut.
		time.Sleep(200 * time.Millisecond)
		_ = c.inner.Close()
	}()
	return true
}

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

func (r *registry) closeAll(notice string) {
	for _, c := range r.snapshot() {
		c.terminate(notice)
	}
}

// broadcaster fans a live session's output out to watchers (`join`). A slow
// watcher loses data rather than slowing the session down.
type broadcaster struct {
	mu       sync.Mutex
	watchers map[chan []byte]struct{}
}

func newBroadcaster() *broadcaster { return &broadcaster{watchers: map[chan []byte]struct{}{}} }

// watching reports whether anyone watches, so that a relay can skip work
// done only for watchers.
func (b *broadcaster) watching() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.watchers) > 0
}

func (b *broadcaster) write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
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

func (b *broadcaster) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 256)
	b.mu.Lock()
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
