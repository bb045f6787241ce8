// Package recstore is where finished session recordings rest: a local
// directory, or an S3-compatible bucket shared by every bastion. Package
// session writes a recording into a local spool directory while the session
// runs (its crash safety needs a file it can flush); once the session's
// recorders are closed, an Uploader moves its files to the bucket and
// removes each local copy only after the bucket confirms the object. Readers
// see the spool and the bucket as one fs.FS laid out like a recordings
// directory, so session.OpenFS finds a recording wherever it is, on any
// bastion.
//
// Objects are named like the spool's files (<shard>/<id>.<suffix>), under
// an optional prefix; which suffixes exist is session's business, not this
// package's.
package recstore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"time"
)

// Info describes a stored object.
type Info struct {
	Size int64
	// ETag is the store's tag for the content; for an object stored in
	// one part it is the hex MD5 of the content. Empty when the store has
	// none.
	ETag string
}

// Store keeps recording files by name (slash-separated, as fs.ValidPath).
// Absent names give errors matching fs.ErrNotExist.
type Store interface {
	// Put stores size bytes read from r as name, replacing any object of
	// that name.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Stat describes name.
	Stat(ctx context.Context, name string) (Info, error)
	// Get reads name.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Remove deletes name; removing an absent name is not an error.
	Remove(ctx context.Context, name string) error
	// String says where the store is, for logs and errors.
	String() string
}

// FS presents s as a read-only fs.FS whose reads run under ctx.
func FS(ctx context.Context, s Store) fs.FS { return storeFS{ctx: ctx, s: s} }

type storeFS struct {
	ctx context.Context
	s   Store
}

func (f storeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	rc, err := f.s.Get(f.ctx, name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return storeFile{ReadCloser: rc, name: name, s: f}, nil
}

// Stat asks the store about name alone (one HEAD for a bucket), where
// fs.Stat would otherwise open the object.
func (f storeFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	info, err := f.s.Stat(f.ctx, name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fileInfo{name: name, size: info.Size}, nil
}

// storeFile is an object being read. Stat asks the store again: readers
// here stream and rarely ask.
type storeFile struct {
	io.ReadCloser
	name string
	s    storeFS
}

func (f storeFile) Stat() (fs.FileInfo, error) { return f.s.Stat(f.name) }

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string       { return path.Base(i.name) }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o400 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

// Union is an fs.FS that opens a name from the first of layers that has
// it: the spool before the bucket, so a recording still (or again) on
// this bastion's disk is read from there.
func Union(layers ...fs.FS) fs.FS { return union(layers) }

type union []fs.FS

func (u union) Open(name string) (fs.File, error) {
	return first(u, "open", name, func(l fs.FS) (fs.File, error) { return l.Open(name) })
}

// Stat is Open's search without opening anything.
func (u union) Stat(name string) (fs.FileInfo, error) {
	return first(u, "stat", name, func(l fs.FS) (fs.FileInfo, error) { return fs.Stat(l, name) })
}

// first returns what op finds in the first layer that has name.
func first[T any](u union, op, name string, find func(fs.FS) (T, error)) (T, error) {
	var zero T
	var last error = &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	for _, l := range u {
		v, err := find(l)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return zero, err
		}
		last = err
	}
	return zero, last
}
