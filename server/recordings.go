package server

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/session/recstore"
)

// Recordings rest in recording.dir, or, with recording.s3, in a bucket
// every bastion reads: recording.dir is then the spool a session is
// written to while it runs, and the uploader moves its files to the
// bucket once its recorders are closed.

// OpenRecordingBucket returns the bucket of recording.s3, or nil without
// one. It does not talk to the server.
func OpenRecordingBucket(cfg config.RecordingConfig) (*recstore.S3, error) {
	c := cfg.S3
	if c == nil {
		return nil, nil
	}
	o := recstore.S3Options{Endpoint: c.Endpoint, Bucket: c.Bucket, Region: c.Region, Prefix: c.Prefix,
		AccessKeyID: c.AccessKeyID, PathStyle: c.PathStyle}
	if c.SecretAccessKeyFile != "" {
		secret, err := recstore.ReadSecretFile(c.SecretAccessKeyFile)
		if err != nil {
			return nil, err
		}
		o.SecretAccessKey = secret
	}
	s, err := recstore.NewS3(o)
	if err != nil {
		return nil, fmt.Errorf("recording.s3: %w", err)
	}
	return s, nil
}

// Recordings is every recording this bastion can read, laid out like a
// recordings directory: its spool first, then the bucket.
func (b *Bastion) Recordings(ctx context.Context) fs.FS {
	spool := os.DirFS(b.Config.Recording.Dir)
	if b.bucket == nil {
		return spool
	}
	return recstore.Union(spool, recstore.FS(ctx, b.bucket))
}

// spooledRecorder tells the uploader when a cast recorder is closed.
// Embedding keeps the recorder's other methods (the queue the metrics
// read) visible.
type spooledRecorder struct {
	*session.Recorder
	closed func()
}

func (r *spooledRecorder) Close() error {
	defer r.closed()
	return r.Recorder.Close()
}

// startUploads queues what an earlier run left in the spool and moves
// recordings to the bucket until ctx ends. It runs before the proxy
// serves: the spool has no open recorders yet.
func (b *Bastion) startUploads() func(context.Context) {
	if b.uploader == nil {
		return nil
	}
	if err := b.uploader.Resume(); err != nil {
		b.Log.Warn("look for recordings left in the spool", "dir", b.Config.Recording.Dir, "err", err)
	}
	return b.uploader.Run
}
