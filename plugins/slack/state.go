package slack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// message is where a request was posted.
type message struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// state is what survives a restart.
type state struct {
	// LastEventID is the id of the last watch event handled.
	LastEventID int64 `json:"last_event_id"`
	// Messages maps request ids to their Slack message; requests in a final
	// state are dropped from it.
	Messages map[string]message `json:"messages"`
}

// loadState reads the state file. A missing file is a first start: the
// watch begins at the start of the audit log, so requests still pending are
// posted and everything already decided is passed over.
func loadState(path string) (state, error) {
	st := state{Messages: map[string]message{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("parse state file %s: %w", path, err)
	}
	if st.Messages == nil {
		st.Messages = map[string]message{}
	}
	return st, nil
}

// save writes the state atomically (temporary file, then rename), so a crash
// never leaves half a file.
func (st state) save(path string) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".slack-state-*")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}
