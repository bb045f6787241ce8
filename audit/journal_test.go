package audit

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCheckpointJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.checkpoints")
	if _, ok, err := LastCheckpoint(path); ok || err != nil {
		t.Fatalf("empty journal: ok=%v err=%v", ok, err)
	}
	for i := int64(1); i <= 3; i++ {
		if err := RecordCheckpoint(path, Checkpoint{Seq: i * 10, Hash: []byte{byte(i)}, Time: time.Unix(i, 0).UTC(), Signature: []byte("sig")}); err != nil {
			t.Fatal(err)
		}
	}
	// A torn last line (crash mid-write) must not hide the good ones.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":99,"ha`)
	f.Close()
	cp, ok, err := LastCheckpoint(path)
	if err != nil || !ok || cp.Seq != 30 || cp.Hash[0] != 3 {
		t.Fatalf("last checkpoint: %+v ok=%v err=%v", cp, ok, err)
	}
}
