package recstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/session"
)

// UploaderOptions tune an Uploader.
type UploaderOptions struct {
	// MinBackoff and MaxBackoff bound the wait before retrying a session
	// whose upload failed; it doubles from Min up to Max. Defaults 1s
	// and 5m.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	// OnUploaded, if set, is called after a session's files are all in
	// the store and gone from the spool.
	OnUploaded func(id string)
}

// Uploader moves finished recordings from the spool directory to a Store.
// A session's files move once all of its recorders are closed (Opened and
// Closed count them); a failed upload is retried with backoff, and what is
// still in the spool when the bastion stops is found again by Resume at
// the next start.
type Uploader struct {
	spool string
	store Store
	opts  UploaderOptions

	mu      sync.Mutex
	open    map[string]int       // recorders open per session
	pending map[string]*attempts // sessions waiting to move
	wake    chan struct{}
}

type attempts struct {
	n    int
	next time.Time
}

// NewUploader moves recordings from spool to store once Run runs.
func NewUploader(spool string, store Store, opts UploaderOptions) *Uploader {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Minute, opts.MinBackoff)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Uploader{spool: spool, store: store, opts: opts, open: map[string]int{},
		pending: map[string]*attempts{}, wake: make(chan struct{}, 1)}
}

// Opened notes that a recorder of session id is writing to the spool.
func (u *Uploader) Opened(id string) {
	u.mu.Lock()
	u.open[id]++
	u.mu.Unlock()
}

// Closed notes that a recorder of session id is closed; when it was the
// last one, the session's files are queued for upload.
func (u *Uploader) Closed(id string) {
	u.mu.Lock()
	u.open[id]--
	last := u.open[id] <= 0
	if last {
		delete(u.open, id)
		u.queueLocked(id)
	}
	u.mu.Unlock()
}

// Resume queues every session with complete files in the spool: those
// whose upload a stop interrupted or never began. Call it before any
// recorder opens (a raw store being written looks complete by its name).
func (u *Uploader) Resume() error {
	ids, err := session.Spooled(u.spool)
	if err != nil {
		return err
	}
	u.mu.Lock()
	for _, id := range ids {
		u.queueLocked(id)
	}
	u.mu.Unlock()
	if len(ids) > 0 {
		u.opts.Logger.Info("recordings waiting in the spool queued for upload", "count", len(ids), "store", u.store.String())
	}
	return nil
}

// Pending reports how many sessions wait to be uploaded.
func (u *Uploader) Pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending)
}

func (u *Uploader) queueLocked(id string) {
	if _, ok := u.pending[id]; !ok {
		u.pending[id] = &attempts{}
	}
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Run uploads queued sessions, one at a time, until ctx ends.
func (u *Uploader) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		id, wait := u.next()
		if id != "" {
			u.upload(ctx, id)
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// next returns a session due for an attempt, or how long until one is.
func (u *Uploader) next() (string, time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	wait := time.Hour
	for id, a := range u.pending {
		if u.open[id] > 0 {
			continue
		}
		if !a.next.After(now) {
			return id, 0
		}
		wait = min(wait, a.next.Sub(now))
	}
	return "", wait
}

func (u *Uploader) upload(ctx context.Context, id string) {
	err := u.move(ctx, id)
	u.mu.Lock()
	defer u.mu.Unlock()
	a := u.pending[id]
	if err == nil || a == nil {
		delete(u.pending, id)
		if err == nil && u.opts.OnUploaded != nil {
			go u.opts.OnUploaded(id)
		}
		return
	}
	if ctx.Err() != nil {
		return // stopping: Resume finds it at the next start
	}
	a.n++
	backoff := u.opts.MinBackoff << min(a.n-1, 20)
	if backoff > u.opts.MaxBackoff || backoff <= 0 {
		backoff = u.opts.MaxBackoff
	}
	a.next = time.Now().Add(backoff)
	u.opts.Logger.Warn("recording upload failed; kept in the spool and retried", "session", id, "attempt", a.n,
		"retry_in", backoff, "store", u.store.String(), "err", err)
}

// move uploads each complete file of session id and removes it from the
// spool once the store confirms it.
func (u *Uploader) move(ctx context.Context, id string) error {
	names, err := session.Finished(u.spool, id)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := u.moveFile(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

func (u *Uploader) moveFile(ctx context.Context, name string) error {
	local := filepath.Join(u.spool, filepath.FromSlash(name))
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	sum := md5.New()
	if err := u.store.Put(ctx, name, io.TeeReader(f, sum), fi.Size()); err != nil {
		return err
	}
	if err := confirm(ctx, u.store, name, fi.Size(), hex.EncodeToString(sum.Sum(nil))); err != nil {
		return err
	}
	f.Close()
	if err := os.Remove(local); err != nil {
		return fmt.Errorf("remove uploaded %s from the spool: %w", name, err)
	}
	return nil
}

// confirm checks that the store holds name with the size (and, where the
// store's tag is a plain MD5, the digest) of what was sent.
func confirm(ctx context.Context, s Store, name string, size int64, md5hex string) error {
	info, err := s.Stat(ctx, name)
	if err != nil {
		return fmt.Errorf("confirm upload: %w", err)
	}
	if info.Size != size {
		return fmt.Errorf("confirm upload %s: %s holds %d bytes, %d were sent", name, s, info.Size, size)
	}
	if isMD5(info.ETag) && !strings.EqualFold(info.ETag, md5hex) {
		return fmt.Errorf("confirm upload %s: %s has MD5 %s, %s was sent", name, s, info.ETag, md5hex)
	}
	return nil
}

// isMD5 tells a single-part ETag (the content's MD5) from a multipart one
// ("<md5 of md5s>-<parts>") or none.
func isMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}
