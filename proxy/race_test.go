package proxy

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// nopSessions is a session index that keeps nothing.
type nopSessions struct{}

func (nopSessions) CreateSession(context.Context, storage.Session) error { return nil }
func (nopSessions) EndSession(context.Context, string, time.Time, string, *int, int64, int64) error {
	return nil
}
func (nopSessions) GetSession(context.Context, string) (storage.Session, error) {
	return storage.Session{}, nil
}
func (nopSessions) ListSessions(context.Context, storage.SessionFilter) ([]storage.Session, error) {
	return nil, nil
}
func (nopSessions) MarkInterrupted(context.Context, string, time.Time) (int, error) { return 0, nil }

type nopAudit struct{}

func (nopAudit) Append(context.Context, storage.Event) error { return nil }

// The sessions page polls Live while sessions start: what a channel runs
// (its kind and command) is set when its start request arrives and read by
// Live, from different goroutines. Under -race this fails if the two are
// not ordered by a lock.
func TestLiveWhileSessionsStart(t *testing.T) {
	s := &Server{opt: Options{Sessions: nopSessions{}, Audit: nopAudit{}},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), live: newRegistry(), finalizers: make(chan struct{}, 2)}
	c := &liveConn{id: "c1", channels: map[string]*liveChannel{}}
	s.live.add(c)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = s.Live()
			}
		}
	}()
	for range 50 {
		live := &liveChannel{id: newID(), watch: newBroadcaster()}
		tap := newSessionTap(s, context.Background(), c, live)
		c.addChannel(live)
		tap.clientRequest(&ssh.Request{Type: "exec", Payload: ssh.Marshal(struct{ S string }{"uptime"})}, nil)
		c.removeChannel(tap.id)
	}
	close(stop)
	wg.Wait()
}
