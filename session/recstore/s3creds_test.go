package recstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/s3test"
	"github.com/gatehouse-dev/gatehouse/session/recstore"
)

// With neither access_key_id nor secret_access_key_file, the standard AWS
// environment gives the credentials (README: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY first).
func TestS3CredentialsFromTheAWSEnvironment(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("HOME", t.TempDir()) // no ~/.aws of whoever runs the test
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	s, err := recstore.NewS3(recstore.S3Options{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "ab/env-creds.cast.zst", bytes.NewReader([]byte("hello")), 5); err != nil {
		t.Fatalf("Put with credentials from the environment: %v", err)
	}
	if info, err := s.Stat(ctx, "ab/env-creds.cast.zst"); err != nil || info.Size != 5 {
		t.Fatalf("Stat: %+v %v", info, err)
	}
	// The environment really is what is used: a wrong secret there fails.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	bad, err := recstore.NewS3(recstore.S3Options{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Put(ctx, "ab/env-creds-2.cast.zst", bytes.NewReader([]byte("hello")), 5); err == nil {
		t.Fatal("Put with a wrong secret in the environment succeeded")
	}
}

// The secret file holds one line; its line ending is not part of the key,
// and an empty file is refused.
func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "secret")
	if err := os.WriteFile(one, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := recstore.ReadSecretFile(one); err != nil || got != "s3cr3t" {
		t.Fatalf("ReadSecretFile = %q, %v", got, err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := recstore.ReadSecretFile(empty); err == nil {
		t.Fatal("an empty secret file was accepted")
	}
}
