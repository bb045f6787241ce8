package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often Watch looks at the roles file.
const DefaultPollInterval = 500 * time.Millisecond

// Engine holds the current policy and replaces it when the roles file
// changes. Readers call Current on every decision and never block: the
// policy sits behind an atomic pointer and a reload swaps it whole, so a
// decision never sees half of an old file and half of a new one.
type Engine struct {
	path string
	log  *slog.Logger

	// PollInterval is how often Watch checks the file; set it before
	// calling Watch. Zero means DefaultPollInterval.
	PollInterval time.Duration

	cur atomic.Pointer[Policy]

	// mu serialises reloads so listeners see changes in order and lastSum
	// stays consistent with what was last tried.
	mu        sync.Mutex
	lastSum   [sha256.Size]byte // content last tried, good or bad
	listeners map[int]func(old, new *Policy)
	nextID    int
}

// NewEngine loads the roles file at path. It fails if the file cannot be
// loaded: a bastion must not start with no policy or a broken one.
func NewEngine(path string, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.Default()
	}
	e := &Engine{path: path, log: logger, listeners: map[int]func(old, new *Policy){}}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: read roles file %s: %w", path, err)
	}
	p, err := Parse(path, data)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	e.lastSum = sha256.Sum256(data)
	e.cur.Store(p)
	logger.Info("policy loaded", "file", path, "roles", len(p.names), "digest", p.digest[:12])
	return e, nil
}

// Current returns the policy in force. Hold on to it for the length of one
// decision, not longer: it may be replaced at any moment.
func (e *Engine) Current() *Policy { return e.cur.Load() }

// Path is the roles file the engine watches.
func (e *Engine) Path() string { return e.path }

// Reload rereads the roles file (the SIGHUP path). On failure the last good
// policy stays in force and the error, naming file and line, is returned.
// On success every listener registered by Watch is called, even if the
// content did not change, so an operator's explicit reload is always
// visible.
func (e *Engine) Reload() error {
	// Read under the lock so two overlapping reloads cannot apply an older
	// read after a newer one.
	e.mu.Lock()
	defer e.mu.Unlock()
	data, err := os.ReadFile(e.path)
	if err != nil {
		e.log.Error("policy reload failed; keeping the last good policy", "file", e.path, "err", err)
		return fmt.Errorf("reload policy: read roles file %s: %w", e.path, err)
	}
	return e.apply(data)
}

// apply parses data and swaps it in; e.mu must be held.
func (e *Engine) apply(data []byte) error {
	e.lastSum = sha256.Sum256(data)
	p, err := Parse(e.path, data)
	if err != nil {
		e.log.Error("policy reload failed; keeping the last good policy", "err", err)
		return fmt.Errorf("reload policy: %w", err)
	}
	old := e.cur.Swap(p)
	e.log.Info("policy reloaded", "file", e.path, "roles", len(p.names), "digest", p.digest[:12])
	for _, fn := range e.listeners {
		fn(old, p)
	}
	return nil
}

// Subscribe registers fn to be called after every successful reload, by
// Watch or Reload, with the replaced and the new policy. Reloads are
// serialised while fn runs, so fn must not call Reload. The returned func
// unregisters fn.
func (e *Engine) Subscribe(fn func(old, new *Policy)) (unsubscribe func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := e.nextID
	e.nextID++
	e.listeners[id] = fn
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.listeners, id)
	}
}

// Watch polls the roles file until ctx is done and reloads it when its
// content changes, calling onChange after every successful reload (its own
// and Reload's). It compares content, not just the modification time, so it
// handles editors that write a new file and rename it over the old one, and
// it retries a broken file only once its content changes again. onChange
// runs with reloads serialised and must not call Reload.
func (e *Engine) Watch(ctx context.Context, onChange func(old, new *Policy)) {
	if onChange != nil {
		// Subscribing before the first poll means no change can slip
		// between starting Watch and the first reload it reports.
		defer e.Subscribe(onChange)()
	}

	interval := e.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastMod time.Time
	var lastSize int64 = -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(e.path)
		if err != nil {
			// Between an editor's unlink and rename the file may be briefly
			// missing; the next tick will see the new one.
			e.log.Debug("policy watch: stat roles file", "file", e.path, "err", err)
			continue
		}
		// Skip the read when size and mtime are unchanged, unless the file
		// was modified within the last two seconds: on filesystems with
		// coarse timestamps a quick second write can keep both the same.
		if fi.ModTime().Equal(lastMod) && fi.Size() == lastSize && time.Since(fi.ModTime()) > 2*time.Second {
			continue
		}
		lastMod, lastSize = fi.ModTime(), fi.Size()
		data, err := os.ReadFile(e.path)
		if err != nil {
			e.log.Debug("policy watch: read roles file", "file", e.path, "err", err)
			continue
		}
		sum := sha256.Sum256(data)
		e.mu.Lock()
		if !bytes.Equal(sum[:], e.lastSum[:]) {
			_ = e.apply(data) // apply logs failures; the last good policy stays
		}
		e.mu.Unlock()
	}
}
