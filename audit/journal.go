package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// JournalPath is where signed checkpoints are kept: next to the key, away
// from the database, so rewriting the database cannot rewrite them.
func JournalPath(keyPath string) string { return keyPath + ".checkpoints" }

// RecordCheckpoint appends cp as a JSON line to the journal and syncs it.
func RecordCheckpoint(path string, cp Checkpoint) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open checkpoint journal: %w", err)
	}
	b, _ := json.Marshal(cp)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write checkpoint journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync checkpoint journal: %w", err)
	}
	return f.Close()
}

// LastCheckpoint returns the newest checkpoint in the journal; ok is false
// when there is none yet. A torn last line (crash mid-write) is skipped.
func LastCheckpoint(path string) (cp Checkpoint, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, fmt.Errorf("open checkpoint journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c Checkpoint
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.Seq > 0 {
			cp, ok = c, true
		}
	}
	if err := sc.Err(); err != nil {
		return cp, ok, fmt.Errorf("read checkpoint journal: %w", err)
	}
	return cp, ok, nil
}
