package session

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Whatever copies recordings elsewhere (the uploader to a bucket) names
// them like the recordings directory does, and learns which files a
// session has from Files (files.go) alone: the suffixes stay this
// package's business.

// Name returns <shard>/<id>, the slash-separated path of session id's
// recording files without suffix, relative to a recordings directory or
// to a bucket prefix.
func Name(id string) (string, error) {
	b, err := base("", id)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(b), nil
}

// Finished lists the files of session id's recording that exist in dir,
// as Files names them. Call it once the session's recorders are closed:
// a file still being written looks like any other.
func Finished(dir, id string) ([]string, error) {
	names, err := Files(id)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list recording %s: %w", id, err)
		}
		if fi.Mode().IsRegular() {
			out = append(out, name)
		}
	}
	return out, nil
}

// Spooled lists the ids of the sessions with recording files in dir, in
// no particular order. Files that Files does not name (temporary files,
// strays, files in the wrong shard) are ignored. Like Finished, it is
// meant for a directory whose recorders are closed: at a bastion's start.
func Spooled(dir string) ([]string, error) {
	shards, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list recordings: %w", err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, s := range shards {
		if !s.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, s.Name()))
		if err != nil {
			return nil, fmt.Errorf("list recordings: %w", err)
		}
		for _, e := range entries {
			id, _, ok := strings.Cut(e.Name(), ".")
			if !ok || seen[id] || !e.Type().IsRegular() {
				continue
			}
			names, err := Files(id)
			if err != nil || !slices.Contains(names, path.Join(s.Name(), e.Name())) {
				continue
			}
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
