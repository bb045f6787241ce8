package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
)

// channelPair returns the two ends of one session channel over an
// in-memory SSH connection.
func channelPair(t *testing.T) (server, client ssh.Channel) {
	t.Helper()
	p := connPair(t)
	go ssh.DiscardRequests(p.clientReqs)
	return p.server, p.client
}

// pair is one session channel over a loopback SSH connection: the server
// connection, both ends of the channel, and the requests the client gets
// on it.
type pair struct {
	conn           *ssh.ServerConn
	server, client ssh.Channel
	clientReqs     <-chan *ssh.Request
}

func connPair(t *testing.T) pair {
	t.Helper()
	cc, sc := sshtest.Loopback(t)
	scfg := &ssh.ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(sshtest.NewSigner(t))
	got := make(chan ssh.Channel, 1)
	var sconn *ssh.ServerConn
	go func() {
		conn, chans, reqs, err := ssh.NewServerConn(sc, scfg)
		sconn = conn
		if err != nil {
			close(got)
			return
		}
		go ssh.DiscardRequests(reqs)
		nc, ok := <-chans
		if !ok {
			close(got)
			return
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			close(got)
			return
		}
		go ssh.DiscardRequests(creqs)
		got <- ch
	}()
	conn, chans, reqs, err := ssh.NewClientConn(cc, "pipe", &ssh.ClientConfig{User: "t", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "")
		}
	}()
	client, creqs, err := conn.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-got
	if !ok {
		t.Fatal("server side of the channel failed")
	}
	return pair{conn: sconn, server: server, client: client, clientReqs: creqs}
}

// A termination notice and the relay's EOF come from different goroutines
// with nothing else ordering them; x/crypto's EOF flag has no lock of its
// own, so liveChannel must provide one. Under -race an unlocked pair fails
// here (it did in the e2e suite, at shutdown).
func TestNoticeAndEOFFromTwoGoroutines(t *testing.T) {
	for range 20 {
		server, client := channelPair(t)
		go func() { _, _ = io.Copy(io.Discard, client.Stderr()) }()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		lc := &liveChannel{ch: server}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); lc.writeStderr("gatehouse: session closed\r\n") }()
		go func() { defer wg.Done(); _ = lc.closeWrite() }()
		wg.Wait()
		server.Close()
	}
}

// A watcher who joins late first gets the recent output (at most
// replayBytes of it, the newest), then what follows, with nothing doubled.
func TestBroadcasterReplaysRecentOutput(t *testing.T) {
	b := newBroadcaster()
	b.write([]byte("old prompt$ "))
	ch, stop := b.subscribe()
	defer stop()
	b.write([]byte("ls\r\n"))
	if got := string(<-ch) + string(<-ch); got != "old prompt$ ls\r\n" {
		t.Fatalf("late watcher got %q", got)
	}

	big := newBroadcaster()
	for i := 0; i < 3*replayBytes/4096; i++ {
		chunk := make([]byte, 4096)
		for j := range chunk {
			chunk[j] = byte('a' + i%26)
		}
		big.write(chunk)
	}
	big.write([]byte("END"))
	ch2, stop2 := big.subscribe()
	defer stop2()
	first := <-ch2
	if len(first) != replayBytes || string(first[len(first)-3:]) != "END" {
		t.Fatalf("replay is %d bytes ending %q; want the newest %d", len(first), first[len(first)-3:], replayBytes)
	}

	// A session that ended before anyone joined still closes the channel.
	empty := newBroadcaster()
	ch3, _ := empty.subscribe()
	empty.closeAll()
	if _, ok := <-ch3; ok {
		t.Fatal("a watcher of a silent, closed session got data")
	}
}

// The recent output is written round once full: whatever the sizes of the
// writes, a new watcher gets exactly the newest replayBytes, in order.
func TestBroadcasterRecentInOrder(t *testing.T) {
	for _, sizes := range [][]int{{1000, 7, 40000, 3}, {replayBytes - 1, 2, replayBytes, 5}, {100}, {replayBytes + 1}, {333}} {
		b := newBroadcaster()
		var all []byte
		for round := range 5 {
			for _, n := range sizes {
				chunk := make([]byte, n)
				for j := range chunk {
					chunk[j] = byte(len(all) + j + round)
				}
				all = append(all, chunk...)
				b.write(chunk)
			}
			ch, stop := b.subscribe()
			got := <-ch
			stop()
			want := all[max(0, len(all)-replayBytes):]
			if !bytes.Equal(got, want) {
				t.Fatalf("sizes %v round %d: replay of %d bytes differs from the newest %d", sizes, round, len(got), len(want))
			}
		}
	}
}

// A terminated connection leaves Live at once, before its close finishes.
func TestLiveOmitsTerminatedConnection(t *testing.T) {
	s := &Server{live: newRegistry()}
	c := &liveConn{id: "c1", channels: map[string]*liveChannel{"s1": {id: "s1", kind: "shell"}}}
	s.live.add(c)
	if got := s.Live(); len(got) != 1 || got[0].ID != "s1" {
		t.Fatalf("Live before terminate = %+v", got)
	}
	c.mu.Lock()
	c.closed = true // what terminate sets before it starts closing
	c.mu.Unlock()
	if got := s.Live(); len(got) != 0 {
		t.Fatalf("Live after terminate = %+v, want none", got)
	}
}

// A terminated connection's session channel gets the notice, then the
// exit status, then the close, in that order on the connection, with no
// pause in between; a second terminate does nothing.
func TestTerminateDeliversNoticeThenCloses(t *testing.T) {
	p := connPair(t)
	ctx, end := context.WithCancelCause(context.Background())
	defer end(nil)
	c := &liveConn{id: "c1", inner: p.conn, channels: map[string]*liveChannel{}, ctx: ctx, end: end}
	live := &liveChannel{id: "s1", ch: p.server, delivered: make(chan struct{})}
	c.addChannel(live)
	// What relaySession and serveInner register.
	context.AfterFunc(ctx, func() { live.deliverNotice(context.Cause(ctx)) })
	context.AfterFunc(ctx, c.closeAfterNotices)

	status := make(chan uint32, 1)
	go func() {
		for r := range p.clientReqs {
			if r.Type == "exit-status" && len(r.Payload) == 4 {
				status <- binary.BigEndian.Uint32(r.Payload)
			}
		}
		close(status)
	}()
	why := userErrorf("session terminated by %s", "alice")
	if !c.terminate(why) || c.terminate(userErrorf("again")) {
		t.Fatal("only the first terminate ends the connection")
	}
	got, _ := io.ReadAll(p.client.Stderr())
	if string(got) != "\r\ngatehouse: session terminated by alice\r\n" {
		t.Fatalf("client read %q", got)
	}
	if s, ok := <-status; !ok || s != 255 {
		t.Fatalf("exit status %d (%v)", s, ok)
	}
	if err := p.conn.Wait(); err == nil {
		t.Fatal("connection still open")
	}
	if cause := context.Cause(ctx); cause != why {
		t.Fatalf("cause %v", cause)
	}
}

func TestUserError(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	e := &UserError{Line: "gatehouse: cannot reach db-1: connection refused", Cause: cause}
	if !errors.Is(e, cause) || e.Error() != e.Line+": "+cause.Error() {
		t.Fatalf("%v", e)
	}
	wrapped := fmt.Errorf("authorize: %w", userErrorf("you are locked"))
	if got := asUserError(wrapped); got.Line != "gatehouse: you are locked" {
		t.Fatalf("asUserError kept %q", got.Line)
	}
	plain := errors.New("your access is locked")
	if got := asUserError(plain); got.Line != "gatehouse: your access is locked" || !errors.Is(got, plain) {
		t.Fatalf("asUserError of a plain error: %+v", got)
	}
}
