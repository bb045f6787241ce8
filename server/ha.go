package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"
)

// Several bastions may share one PostgreSQL database. Each already finds
// the others' changes by scanning the store (access.Service.Run) and
// re-checking live sessions (proxy.RunRechecks); that is the safety net.
// To make a lock or revoke placed on one bastion close sessions on the
// others within milliseconds rather than a scan interval, every change is
// also announced on a PostgreSQL notification channel that all bastions
// listen on.

// changesChannel is the notification channel all bastions of one database
// share.
const changesChannel = "gatehouse_changes"

// Bounds on talking to the database about changes: a slow database must
// not hold up the command that made the change, nor block shutdown.
const (
	publishTimeout = 2 * time.Second
	listenRetry    = 5 * time.Second
)

// changeBus is a store that can carry notifications between bastions;
// *postgres.Store is one. SQLite has one bastion, so it needs none.
type changeBus interface {
	Notify(ctx context.Context, channel, payload string) error
	Listen(ctx context.Context, channel string) (<-chan string, error)
}

// changeNote is the payload: only identifiers, never reasons, because
// every session with the database may LISTEN.
type changeNote struct {
	// Origin is random per process, not the bastion_id: `gatehouse lock
	// --config` runs with the same bastion_id as the serving bastion it
	// shares a config with, and that bastion must still hear of the lock.
	Origin string `json:"origin"`
	Kind   string `json:"kind"`
	User   string `json:"user"`
	// Notes about a live session (see remote.go): its id, the bastion_id
	// holding it, who asks, the answer's URL and whom it is for.
	Session string `json:"session,omitempty"`
	Bastion string `json:"bastion,omitempty"`
	By      string `json:"by,omitempty"`
	URL     string `json:"url,omitempty"`
	To      string `json:"to,omitempty"`
}

// newOrigin names this process in the notes it sends.
func newOrigin() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publishChanges returns the access.Options.OnChange hook that announces a
// stored change to every bastion, or nil when the store cannot.
func publishChanges(bus changeBus, origin string, log *slog.Logger) func(ctx context.Context, kind, user string) {
	if bus == nil {
		return nil
	}
	return func(ctx context.Context, kind, user string) {
		payload, err := json.Marshal(changeNote{Origin: origin, Kind: kind, User: user})
		if err != nil {
			log.Error("encode change notification", "kind", kind, "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(ctx, publishTimeout)
		defer cancel()
		if err := bus.Notify(ctx, changesChannel, string(payload)); err != nil {
			// The change itself is stored: the others see it at their
			// next scan, only later.
			log.Warn("announce change to other bastions; they will see it at their next scan", "kind", kind, "user", user, "err", err)
		}
	}
}

// followOtherBastions listens for changes made by other bastions (and by
// admin commands run against the same database) and scans the store at
// once when one arrives, until ctx ends.
func (b *Bastion) followOtherBastions(ctx context.Context, bus changeBus) {
	var notes <-chan string
	for notes == nil {
		var err error
		if notes, err = bus.Listen(ctx, changesChannel); err != nil {
			b.Log.Warn("listen for other bastions' changes; retrying, periodic scans go on meanwhile", "err", err, "retry_in", listenRetry)
			select {
			case <-ctx.Done():
				return
			case <-time.After(listenRetry):
			}
		}
	}
	for payload := range notes {
		// A burst of changes (a lock, then a revoke) needs one scan, not
		// one each.
		scan := b.takeNote(ctx, payload)
	drain:
		for {
			select {
			case more, ok := <-notes:
				if !ok {
					return
				}
				scan = b.takeNote(ctx, more) || scan
			default:
				break drain
			}
		}
		if !scan {
			// This process scanned right after making the change, or
			// the notes were about live sessions.
			continue
		}
		// Scan reports what changed as access.Changes, which
		// followChanges turns into rechecks of just those users with the
		// right notice ("your access was locked"). A blanket Recheck here
		// would race it and close the same sessions with a vaguer line.
		if err := b.Access.Scan(ctx); err != nil && ctx.Err() == nil {
			b.Log.Warn("scan after another bastion's change", "err", err)
		}
	}
}

// takeNote acts on a note about a live session and reports whether
// payload calls for a scan of the store: a change another process made.
func (b *Bastion) takeNote(ctx context.Context, payload string) (scan bool) {
	if b.ownNote(payload) {
		return false
	}
	var n changeNote
	if json.Unmarshal([]byte(payload), &n) == nil {
		switch n.Kind {
		case noteTerminate, noteLocate, noteLocated:
			if b.remote != nil {
				b.remote.handle(ctx, n)
			}
			return false
		}
	}
	return true
}

// ownNote reports whether payload came from this process. The empty
// payload Listen sends after reconnecting ("you may have missed
// something") and anything unreadable are treated as someone else's.
func (b *Bastion) ownNote(payload string) bool {
	var n changeNote
	if payload == "" || json.Unmarshal([]byte(payload), &n) != nil {
		return false
	}
	return n.Origin == b.origin
}
