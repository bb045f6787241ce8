package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// A live session runs on one bastion: its connection, its watchers and
// the power to end it are there. The others reach it through the change
// channel: "session.terminate" asks the bastion holding a session to end
// it, "session.locate" asks it for its web address, so that a watcher is
// sent there ("session.located" answers). The notes carry identifiers
// only (a session id, who asks, a URL); the terminal output never goes
// through the database.

// Kinds of the notes about live sessions.
const (
	noteTerminate = "session.terminate"
	noteLocate    = "session.locate"
	noteLocated   = "session.located"
)

// locateTimeout bounds the wait for the holding bastion's answer.
const locateTimeout = 3 * time.Second

// ErrNoAnswer is returned by RemoteSessions.Locate when the bastion
// holding a session did not answer in time.
var ErrNoAnswer = errors.New("the bastion holding the session did not answer")

// RemoteSessions reaches live sessions held by other bastions of the same
// database.
type RemoteSessions struct {
	b *Bastion

	mu      sync.Mutex
	waiting map[string][]chan string // session id -> Locate calls waiting for its URL
}

// Remote returns the way to other bastions' live sessions, or nil when the
// store carries no notes between bastions (SQLite: there are none).
func (b *Bastion) Remote() *RemoteSessions { return b.remote }

func (r *RemoteSessions) publish(ctx context.Context, n changeNote) error {
	n.Origin = r.b.origin
	payload, err := json.Marshal(n)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := r.b.bus.Notify(ctx, changesChannel, string(payload)); err != nil {
		return fmt.Errorf("reach bastion %s: %w", n.Bastion, err)
	}
	return nil
}

// Terminate asks the bastion holding session s to end it in by's name.
// It returns once the request is sent; the caller watches the session's
// status to see it end.
func (r *RemoteSessions) Terminate(ctx context.Context, s storage.Session, by string) error {
	return r.publish(ctx, changeNote{Kind: noteTerminate, Session: s.ID, Bastion: s.Bastion, By: by})
}

// Locate asks the bastion holding session s for its web address
// (web.public_url).
func (r *RemoteSessions) Locate(ctx context.Context, s storage.Session) (string, error) {
	ch := make(chan string, 1)
	r.mu.Lock()
	r.waiting[s.ID] = append(r.waiting[s.ID], ch)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		list := r.waiting[s.ID]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(r.waiting, s.ID)
		} else {
			r.waiting[s.ID] = list
		}
	}()
	if err := r.publish(ctx, changeNote{Kind: noteLocate, Session: s.ID, Bastion: s.Bastion}); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, locateTimeout)
	defer cancel()
	select {
	case url := <-ch:
		return url, nil
	case <-ctx.Done():
		return "", fmt.Errorf("locate session %s on bastion %s: %w", s.ID, s.Bastion, ErrNoAnswer)
	}
}

// handle acts on a note about a live session from another process.
func (r *RemoteSessions) handle(ctx context.Context, n changeNote) {
	b := r.b
	switch n.Kind {
	case noteTerminate:
		if n.Bastion != b.Config.BastionID || b.Proxy == nil {
			return
		}
		// Terminate waits for the user's notice to be written: not on
		// the loop that reads the notes.
		go func() {
			if b.Proxy.Terminate(ctx, n.Session, n.By) {
				b.Log.Info("session terminated at another bastion's request", "session", n.Session, "by", n.By)
			}
		}()
	case noteLocate:
		if n.Bastion != b.Config.BastionID || !b.liveHere(n.Session) {
			return
		}
		go func() {
			if err := r.publish(ctx, changeNote{Kind: noteLocated, Session: n.Session, URL: b.Config.Web.PublicURL, To: n.Origin}); err != nil {
				b.Log.Warn("answer another bastion looking for a live session", "session", n.Session, "err", err)
			}
		}()
	case noteLocated:
		if n.To != b.origin {
			return
		}
		r.mu.Lock()
		for _, ch := range r.waiting[n.Session] {
			select {
			case ch <- n.URL:
			default:
			}
		}
		r.mu.Unlock()
	}
}

// liveHere reports whether session id runs on this bastion.
func (b *Bastion) liveHere(id string) bool {
	if b.Proxy == nil {
		return false
	}
	for _, l := range b.Proxy.Live() {
		if l.ID == id {
			return true
		}
	}
	return false
}
