package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Checkpoint is a signed statement "the chain had reached Seq with Hash at
// Time". A hash chain alone cannot reveal a cut-off tail or a wholesale
// rewrite by someone who controls the database; a checkpoint signed with a
// key kept outside the database (audit.checkpoint_key) and stored away from
// it (the sink, a ticket, another host) can.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      []byte    `json:"hash"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"signature"`
}

// checkpointMessage is what is signed: "gatehouse-audit-checkpoint-v1" 0x00,
// seq in decimal, 0x00, the raw hash, 0x00, time in UTC RFC3339Nano.
func checkpointMessage(cp Checkpoint) []byte {
	m := []byte("gatehouse-audit-checkpoint-v1\x00")
	m = strconv.AppendInt(m, cp.Seq, 10)
	m = append(m, 0)
	m = append(m, cp.Hash...)
	m = append(m, 0)
	return cp.Time.UTC().AppendFormat(m, time.RFC3339Nano)
}

// SignCheckpoint signs the current head of the chain. An empty chain
// cannot be checkpointed.
func SignCheckpoint(ctx context.Context, store storage.AuditStore, key ed25519.PrivateKey) (Checkpoint, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Checkpoint{}, errors.New("sign audit checkpoint: not an Ed25519 private key")
	}
	head, err := store.ListEvents(ctx, storage.EventFilter{Newest: true, Limit: 1})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign audit checkpoint: read chain head: %w", err)
	}
	if len(head) == 0 {
		return Checkpoint{}, errors.New("sign audit checkpoint: the audit log is empty")
	}
	cp := Checkpoint{Seq: head[0].Seq, Hash: head[0].Hash, Time: time.Now().UTC()}
	cp.Signature = ed25519.Sign(key, checkpointMessage(cp))
	return cp, nil
}

// VerifyCheckpoint checks cp's signature with pub and that the store still
// holds the chain cp vouches for: the event at cp.Seq (or the retention
// anchor, if exactly that event was the last pruned) has cp.Hash, and the
// chain has not been cut back before cp.Seq. Run Verify as well: it proves
// the chain up to the head is intact, this proves the head was not rewritten.
func VerifyCheckpoint(ctx context.Context, store storage.AuditStore, cp Checkpoint, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, checkpointMessage(cp), cp.Signature) {
		return fmt.Errorf("audit checkpoint at %d: bad signature", cp.Seq)
	}
	anchor, err := store.AuditAnchor(ctx)
	if err != nil {
		return fmt.Errorf("audit checkpoint at %d: read anchor: %w", cp.Seq, err)
	}
	if cp.Seq < anchor.Seq {
		return nil // pruned by retention; Verify vouches for what is left
	}
	if cp.Seq == anchor.Seq {
		if !bytes.Equal(anchor.Hash, cp.Hash) {
			return fmt.Errorf("audit checkpoint at %d: retention anchor has a different hash (rewritten?)", cp.Seq)
		}
		return nil
	}
	evs, err := store.ListEvents(ctx, storage.EventFilter{After: cp.Seq - 1, Limit: 1})
	if err != nil {
		return fmt.Errorf("audit checkpoint at %d: read event: %w", cp.Seq, err)
	}
	if len(evs) == 0 || evs[0].Seq != cp.Seq {
		return fmt.Errorf("audit checkpoint at %d: event %d is gone (log truncated?)", cp.Seq, cp.Seq)
	}
	if !bytes.Equal(evs[0].Hash, cp.Hash) {
		return fmt.Errorf("audit checkpoint at %d: event %d has a different hash (rewritten?)", cp.Seq, cp.Seq)
	}
	return nil
}

// LoadCheckpointKey reads the Ed25519 key at path (PKCS #8 PEM). With
// create, a missing file is filled with a new key, readable only by its
// owner; keep it off the database's disk if you can.
func LoadCheckpointKey(path string, create bool) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate audit checkpoint key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encode audit checkpoint key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create audit checkpoint key %s: %w", path, err)
		}
		if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Close()); err != nil {
			return nil, fmt.Errorf("write audit checkpoint key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoint key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit checkpoint key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit checkpoint key %s: not an Ed25519 key", path)
	}
	return key, nil
}
