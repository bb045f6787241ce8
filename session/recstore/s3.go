package recstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options locate a bucket; see config.S3Config.
type S3Options struct {
	Endpoint        string // http(s)://host[:port]
	Bucket          string
	Region          string
	Prefix          string
	AccessKeyID     string
	SecretAccessKey string // with AccessKeyID; both empty: the AWS environment
	PathStyle       bool
}

// S3 is a Store in an S3-compatible bucket.
type S3 struct {
	c      *minio.Client
	bucket string
	prefix string
	where  string
}

// ReadSecretFile reads a secret access key from file, without its line
// ending.
func ReadSecretFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read recording.s3.secret_access_key_file: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("recording.s3.secret_access_key_file %s is empty", file)
	}
	return secret, nil
}

// NewS3 makes the client; it does not talk to the server yet.
func NewS3(o S3Options) (*S3, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("s3 endpoint %q: want http(s)://host[:port]", o.Endpoint)
	}
	creds := credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, "")
	if o.AccessKeyID == "" {
		// The standard AWS chain: environment, shared credentials file,
		// then the instance or task role.
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport}},
		})
	}
	lookup := minio.BucketLookupAuto
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: creds, Secure: u.Scheme == "https", Region: o.Region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	prefix := o.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &S3{c: c, bucket: o.Bucket, prefix: prefix, where: "s3 " + o.Endpoint + "/" + o.Bucket + "/" + prefix}, nil
}

func (s *S3) key(name string) (string, error) {
	if !fs.ValidPath(name) || name == "." {
		return "", fmt.Errorf("recording file %q: %w", name, fs.ErrInvalid)
	}
	return s.prefix + name, nil
}

// wrap turns the S3 error for an absent object into one matching
// fs.ErrNotExist.
func (s *S3) wrap(op, name string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, "NotFound":
		return fmt.Errorf("%s %s in %s: %w", op, name, s.where, fs.ErrNotExist)
	}
	return fmt.Errorf("%s %s in %s: %w", op, name, s.where, err)
}

// partSize is the multipart part size: a recording of up to this many
// bytes goes up in one request, and its ETag is then its MD5.
const partSize = 64 << 20

func (s *S3) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", PartSize: partSize,
		// The server checks each part against this digest and refuses
		// what arrived damaged.
		SendContentMd5: true,
	})
	if err != nil {
		return s.wrap("upload", name, err)
	}
	return nil
}

func (s *S3) Stat(ctx context.Context, name string) (Info, error) {
	key, err := s.key(name)
	if err != nil {
		return Info{}, err
	}
	oi, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.wrap("stat", name, err)
	}
	return Info{Size: oi.Size, ETag: strings.Trim(oi.ETag, `"`)}, nil
}

func (s *S3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("read", name, err)
	}
	// GetObject is lazy: Stat makes the request, so an absent object is
	// reported here rather than at the first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s.wrap("read", name, err)
	}
	return obj, nil
}

func (s *S3) Remove(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.wrap("remove", name, err), fs.ErrNotExist) {
			return nil
		}
		return s.wrap("remove", name, err)
	}
	return nil
}

// Check reports whether the bucket can be reached and exists: for
// readiness and `gatehouse doctor`.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("%s: %w", s.where, err)
	}
	if !ok {
		return fmt.Errorf("%s: no such bucket", s.where)
	}
	return nil
}

func (s *S3) String() string { return s.where }
