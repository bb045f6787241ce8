package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// checkpointEvery is how often the chain head is signed. A rewrite of the
// whole chain is detectable up to the last checkpoint.
const checkpointEvery = 5 * time.Minute

// runCheckpoints signs the audit chain's head with the key kept apart from
// the database, now, every checkpointEvery, and once more on shutdown.
func (b *Bastion) runCheckpoints(ctx context.Context) {
	path := b.Config.Audit.CheckpointKey
	key, err := audit.LoadCheckpointKey(path, true)
	if err != nil {
		b.Log.Error("audit checkpoints disabled", "err", err)
		return
	}
	sign := func(ctx context.Context) {
		cp, err := audit.SignCheckpoint(ctx, b.Store, key)
		if err != nil {
			b.Log.Warn("audit checkpoint", "err", err)
			return
		}
		if err := audit.RecordCheckpoint(audit.JournalPath(path), cp); err != nil {
			b.Log.Error("audit checkpoint", "err", err)
		}
	}
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		sign(ctx)
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			sign(sctx)
			cancel()
			return
		case <-t.C:
		}
	}
}

// VerifyCheckpoint checks the newest signed checkpoint against the store.
// It returns the checkpoint checked, or ok=false when none is configured or
// none was written yet.
func (b *Bastion) VerifyCheckpoint(ctx context.Context) (cp audit.Checkpoint, ok bool, err error) {
	path := b.Config.Audit.CheckpointKey
	if path == "" {
		return cp, false, nil
	}
	key, err := audit.LoadCheckpointKey(path, false)
	if err != nil {
		return cp, false, err
	}
	cp, ok, err = audit.LastCheckpoint(audit.JournalPath(path))
	if err != nil || !ok {
		return cp, ok, err
	}
	pub, isEd := key.Public().(ed25519.PublicKey)
	if !isEd {
		return cp, true, errors.New("checkpoint key is not Ed25519")
	}
	if err := audit.VerifyCheckpoint(ctx, b.Store, cp, pub); err != nil {
		return cp, true, fmt.Errorf("signed checkpoint: %w", err)
	}
	return cp, true, nil
}
