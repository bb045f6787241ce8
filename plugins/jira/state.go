package jira

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// state is what survives a restart: where the watch resumes and which
// issue belongs to which request.
type state struct {
	// LastEventID is the last event handled; -1 before the first run.
	LastEventID int64             `json:"last_event_id"`
	Issues      map[string]string `json:"issues"` // request id → issue key
}

func loadState(path string) (*state, error) {
	st := &state{LastEventID: -1, Issues: map[string]string{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read jira plugin state: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("parse jira plugin state %s: %w", path, err)
	}
	if st.Issues == nil {
		st.Issues = map[string]string{}
	}
	return st, nil
}

// save writes the state atomically: a crash leaves the old or the new file.
func (st *state) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode jira plugin state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".jira-state-*")
	if err != nil {
		return fmt.Errorf("write jira plugin state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write jira plugin state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write jira plugin state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write jira plugin state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write jira plugin state: %w", err)
	}
	return nil
}

func (st *state) issueOf(requestID string) string { return st.Issues[requestID] }

func (st *state) requestOf(key string) string {
	for id, k := range st.Issues {
		if k == key {
			return id
		}
	}
	return ""
}
