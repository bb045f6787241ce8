package recstore_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/syncbuf"
	"github.com/gatehouse-dev/gatehouse/session/recstore"
)

// lossyStore is an object store that can misreport what it holds: short
// (fewer bytes than were sent) or with another MD5. It counts removals.
type lossyStore struct {
	mu      sync.Mutex
	objs    map[string][]byte
	lie     string // "", "short" or "md5"
	puts    int
	removes int
}

func (s *lossyStore) Put(_ context.Context, name string, r io.Reader, size int64) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[name] = b
	s.puts++
	return nil
}

func (s *lossyStore) Stat(_ context.Context, name string) (recstore.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.objs[name]
	sum := md5.Sum(b)
	info := recstore.Info{Size: int64(len(b)), ETag: hex.EncodeToString(sum[:])}
	switch s.lie {
	case "short":
		info.Size--
	case "md5":
		info.ETag = strings.Repeat("0", 32)
	}
	return info, nil
}

func (s *lossyStore) Get(_ context.Context, name string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return io.NopCloser(bytes.NewReader(s.objs[name])), nil
}

func (s *lossyStore) Remove(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removes++
	delete(s.objs, name)
	return nil
}

func (s *lossyStore) String() string { return "lossy" }

func (s *lossyStore) state() (puts, removes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts, s.removes
}

// A recording leaves the spool only once the store confirms the size and,
// for a one-part object, the MD5 of what was sent; until then the upload is
// retried. The uploader never deletes objects from the store.
func TestUploaderRemovesOnlyWhatTheStoreConfirms(t *testing.T) {
	for _, lie := range []string{"short", "md5"} {
		t.Run(lie, func(t *testing.T) {
			store := &lossyStore{objs: map[string][]byte{}, lie: lie}
			spool := t.TempDir()
			var logs syncbuf.Buffer
			u := recstore.NewUploader(spool, store, recstore.UploaderOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go u.Run(ctx)
			record(t, spool, "unconfirmed-1", u)
			deadline := time.Now().Add(30 * time.Second)
			for puts, _ := store.state(); puts < 3; puts, _ = store.state() {
				if time.Now().After(deadline) {
					t.Fatalf("no retries: %d puts", puts)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := len(spoolFiles(t, spool)); n != 2 {
				t.Fatalf("the store misreports (%s), yet the spool holds %d files, want both", lie, n)
			}
			if !strings.Contains(logs.String(), `msg="recording upload failed; kept in the spool and retried"`) {
				t.Errorf("log lacks the README's line:\n%s", logs.String())
			}
			store.mu.Lock()
			store.lie = ""
			store.mu.Unlock()
			waitUploaded(t, u, spool)
			if _, removes := store.state(); removes != 0 {
				t.Errorf("the uploader deleted %d objects from the store", removes)
			}
		})
	}
}
