package audit_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func TestCheckpointKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoint.key")
	if _, err := audit.LoadCheckpointKey(path, false); err == nil {
		t.Fatal("missing key loaded without create")
	}
	k1, err := audit.LoadCheckpointKey(path, true)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", st.Mode(), err)
	}
	k2, err := audit.LoadCheckpointKey(path, true)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reloaded key differs: %v", err)
	}
}

// A checkpoint catches what the chain alone cannot: a cut-off tail and a
// consistent rewrite of the newest events.
func TestCheckpoint(t *testing.T) {
	ctx := context.Background()
	key, err := audit.LoadCheckpointKey(filepath.Join(t.TempDir(), "k"), true)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	otherPub, _, _ := ed25519.GenerateKey(nil)

	tests := []struct {
		name    string
		tamper  func(t *testing.T, db *sql.DB, evs []storage.Event)
		pub     ed25519.PublicKey
		problem string
	}{
		{"intact", nil, pub, ""},
		{"more appended since", nil, pub, ""},
		{"wrong key", nil, otherPub, "bad signature"},
		{"tail cut", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `DELETE FROM events WHERE seq >= 9`)
		}, pub, "is gone"},
		{"tail rewritten consistently", func(t *testing.T, db *sql.DB, evs []storage.Event) {
			ev := evs[9]
			ev.Actor = "alice"
			h, _ := audit.Hash(&ev)
			sqlExec(t, db, `UPDATE events SET actor = 'alice', hash = ? WHERE seq = 10`, h)
		}, pub, "different hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, path := openStore(t)
			evs := buildChain(t, store, 10)
			cp, err := audit.SignCheckpoint(ctx, store, key)
			if err != nil {
				t.Fatalf("SignCheckpoint: %v", err)
			}
			if cp.Seq != 10 {
				t.Fatalf("checkpoint at %d, want 10", cp.Seq)
			}
			if tc.name == "more appended since" {
				buildChain(t, store, 5)
			}
			if tc.tamper != nil {
				tc.tamper(t, rawDB(t, path), evs)
				// The chain itself still verifies: only the checkpoint can tell.
				if rep := mustVerify(t, store); !rep.OK {
					t.Fatalf("chain check caught it (%+v); the test tampers too crudely", rep)
				}
			}
			err = audit.VerifyCheckpoint(ctx, store, cp, tc.pub)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("VerifyCheckpoint: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("VerifyCheckpoint = %v, want %q", err, tc.problem)
			}
		})
	}
}

func TestCheckpointEmptyLog(t *testing.T) {
	store, _ := openStore(t)
	_, key, _ := ed25519.GenerateKey(nil)
	if _, err := audit.SignCheckpoint(context.Background(), store, key); err == nil {
		t.Fatal("checkpoint of an empty log succeeded")
	}
}
