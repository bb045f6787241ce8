// Package s3test runs versitygw (github.com/versity/versitygw), a real S3
// server that serves a local folder, for tests: the recording store's
// conformance test and the end-to-end tests upload to it and read from it.
// .ci/run installs it and exports its path in GATEHOUSE_VERSITYGW.
package s3test

import (
	"bytes"
	"context"
	"github.com/gatehouse-dev/gatehouse/internal/testbin"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Versitygw is the S3 server the tests run against (GATEHOUSE_VERSITYGW
// in CI).
func Versitygw() testbin.Program {
	return testbin.Program{Name: "versitygw", Package: "github.com/versity/versitygw/cmd/versitygw",
		Version: "v1.8.0", Binary: "versitygw", Env: "GATEHOUSE_VERSITYGW"}
}

// Find returns the versitygw binary's path (see testbin.Program.Find).
func Find(t testing.TB) string { t.Helper(); return Versitygw().Find(t) }

// Server is a running versitygw with one bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	Root      string // the folder served; the bucket is Root/Bucket

	t    testing.TB
	bin  string
	addr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs bytes.Buffer
}

// Start runs versitygw on a loopback port until the test ends, with the
// bucket "recordings" created through the S3 API.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Bucket: "recordings", Region: "us-east-1", AccessKey: "gatehouse-test",
		SecretKey: "gatehouse-test-secret", Root: t.TempDir(), t: t, bin: Find(t)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	l.Close()
	s.Endpoint = "http://" + s.addr
	t.Cleanup(s.Stop)
	s.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client().MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("create bucket %s on versitygw: %v\n%s", s.Bucket, err, s.Logs())
	}
	return s
}

// Client is an S3 client for the server, for tests to look at the bucket.
func (s *Server) Client() *minio.Client {
	c, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region: s.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// Restart starts the server (again, after Stop) on the same address and
// folder and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", s.addr, "--quiet", "posix", s.Root)
	cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			s.t.Fatalf("versitygw exited before it was ready: %s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw not ready at %s: %v\n%s", s.addr, err, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server; the folder stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
	if s.t.Failed() {
		s.t.Logf("versitygw output:\n%s", s.logs.String())
	}
}

// Logs is what the server printed.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Keys lists the object names in the bucket.
func (s *Server) Keys(t testing.TB) []string {
	t.Helper()
	var out []string
	for o := range s.Client().ListObjects(context.Background(), s.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list bucket %s: %v", s.Bucket, o.Err)
		}
		out = append(out, o.Key)
	}
	return out
}

// SecretFile writes the secret key to a file in dir, for
// recording.s3.secret_access_key_file.
func (s *Server) SecretFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "s3-secret")
	if err := os.WriteFile(p, []byte(s.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Config is the recording.s3 section for this server.
func (s *Server) Config(secretFile string) map[string]any {
	return map[string]any{"endpoint": s.Endpoint, "bucket": s.Bucket, "region": s.Region,
		"access_key_id": s.AccessKey, "secret_access_key_file": secretFile, "path_style": true}
}
