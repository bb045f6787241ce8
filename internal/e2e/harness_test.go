package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// These tests exercise the harness against a bare sshd node with a CA made
// by ssh-keygen, no gatehouse involved, so the harness is known to work
// before (and independently of) the bastion.

// directClient is a client that reaches node directly with a certificate
// for principals signed by ca.
func directClient(t *testing.T, ca *e2e.TestCA, node *e2e.Node, principals []string, validity string) *e2e.Client {
	t.Helper()
	dir := t.TempDir()
	key, pub := e2e.GenerateKey(t, dir, "id_ed25519")
	cert := ca.SignUser(t, pub, principals, validity)
	port := strings.TrimPrefix(node.Addr, "127.0.0.1:")
	return e2e.NewClient(t, e2e.ClientOptions{
		KeyPath:    key,
		CertPath:   cert,
		KnownHosts: []string{node.KnownHostsLine()},
		Extra:      []string{"Port " + port},
	})
}

func TestNodeAlone(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	ca := e2e.NewTestCA(t)
	node := e2e.StartNode(t, "solo-1", e2e.NodeOptions{TrustedUserCAKeys: ca.PubKey})
	c := directClient(t, ca, node, []string{"ubuntu"}, "-5m:+1h")

	r := c.SSH(append(node.Target("ubuntu"), "id -un")...)
	if r.ExitCode != 0 || r.Stdout != "ubuntu\n" {
		t.Fatalf("ssh ubuntu@node id -un: want exit 0 and \"ubuntu\\n\", got %s", r)
	}
	// The node logs the certificate it accepted; the log is what a failing
	// test shows, so make sure it is really being written.
	log, err := os.ReadFile(node.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "Accepted publickey for ubuntu") {
		t.Errorf("sshd log does not record the login:\n%s", log)
	}
}

// TestNodeCertificateDecisions checks that nodes set up by the harness
// accept exactly the certificates they should: the property every bastion
// test relies on when it expects a refusal from the node.
func TestNodeCertificateDecisions(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	e2e.RequireAccount(t, "postgres")
	ca := e2e.NewTestCA(t)
	other := e2e.NewTestCA(t)
	plain := e2e.StartNode(t, "plain-1", e2e.NodeOptions{TrustedUserCAKeys: ca.PubKey})

	// A node that maps principals to logins through a file, as operators do
	// when certificates name people rather than accounts.
	// sshd reads the file as the login user, so it cannot live under
	// t.TempDir(), which only root may enter.
	pdir := e2e.RemoteDir(t, "postgres")
	if err := os.Chmod(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "postgres"), []byte("team-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mapped := e2e.StartNode(t, "mapped-1", e2e.NodeOptions{
		TrustedUserCAKeys:        ca.PubKey,
		AuthorizedPrincipalsFile: filepath.Join(pdir, "%u"),
	})

	tests := []struct {
		name       string
		node       *e2e.Node
		signer     *e2e.TestCA
		principals []string
		validity   string
		login      string
		wantOK     bool
	}{
		{"principal is the login", plain, ca, []string{"ubuntu"}, "-5m:+1h", "ubuntu", true},
		{"one of several principals", plain, ca, []string{"bob", "ubuntu"}, "-5m:+1h", "ubuntu", true},
		{"principal is not the login", plain, ca, []string{"bob"}, "-5m:+1h", "ubuntu", false},
		{"expired", plain, ca, []string{"ubuntu"}, "-2h:-1h", "ubuntu", false},
		{"not yet valid", plain, ca, []string{"ubuntu"}, "+1h:+2h", "ubuntu", false},
		{"signed by another CA", plain, other, []string{"ubuntu"}, "-5m:+1h", "ubuntu", false},
		{"principals file allows", mapped, ca, []string{"team-data"}, "-5m:+1h", "postgres", true},
		{"principals file replaces login match", mapped, ca, []string{"postgres"}, "-5m:+1h", "postgres", false},
		{"no principals file for login", mapped, ca, []string{"team-data"}, "-5m:+1h", "ubuntu", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := directClient(t, tc.signer, tc.node, tc.principals, tc.validity)
			r := c.SSH(append(tc.node.Target(tc.login), "id -un")...)
			if tc.wantOK {
				if r.ExitCode != 0 || r.Stdout != tc.login+"\n" {
					t.Fatalf("want login as %s, got %s", tc.login, r)
				}
				return
			}
			if r.ExitCode != 255 || r.Stdout != "" || !strings.Contains(r.Stderr, "Permission denied") {
				t.Fatalf("want refusal (exit 255, Permission denied), got %s", r)
			}
		})
	}
}

// TestNodeClientTools drives every client helper (scp, sftp, rsync, a pty
// session) against a bare node, so a failure in the bastion tests points at
// the bastion, not the harness.
func TestNodeClientTools(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	ca := e2e.NewTestCA(t)
	node := e2e.StartNode(t, "tools-1", e2e.NodeOptions{TrustedUserCAKeys: ca.PubKey})
	c := directClient(t, ca, node, []string{"ubuntu"}, "-5m:+1h")
	dest := "ubuntu@127.0.0.1"

	t.Run("scp", func(t *testing.T) {
		for _, mode := range []struct{ name, flag string }{{"sftp protocol", "-s"}, {"legacy protocol", "-O"}} {
			t.Run(mode.name, func(t *testing.T) {
				remote, local := e2e.RemoteDir(t, "ubuntu"), t.TempDir()
				src := writeRandom(t, filepath.Join(local, "up.bin"), 1<<20)
				if r := c.SCP(mode.flag, src, dest+":"+remote+"/up.bin"); r.ExitCode != 0 {
					t.Fatalf("scp upload: %s", r)
				}
				sameFile(t, src, filepath.Join(remote, "up.bin"))
				back := filepath.Join(local, "down.bin")
				if r := c.SCP(mode.flag, dest+":"+remote+"/up.bin", back); r.ExitCode != 0 {
					t.Fatalf("scp download: %s", r)
				}
				sameFile(t, src, back)
			})
		}
	})

	t.Run("sftp", func(t *testing.T) {
		remote, local := e2e.RemoteDir(t, "ubuntu"), t.TempDir()
		src := writeRandom(t, filepath.Join(local, "s.bin"), 256<<10)
		back := filepath.Join(local, "back.bin")
		r := c.SFTP(dest, "put "+src+" "+remote+"/s.bin", "ls -l "+remote, "get "+remote+"/s.bin "+back)
		if r.ExitCode != 0 || !regexp.MustCompile(`(?m)\S+/s\.bin$|\ss\.bin$`).MatchString(r.Stdout) {
			t.Fatalf("sftp batch: %s", r)
		}
		sameFile(t, src, filepath.Join(remote, "s.bin"))
		sameFile(t, src, back)
	})

	t.Run("rsync", func(t *testing.T) {
		remote, local := e2e.RemoteDir(t, "ubuntu"), t.TempDir()
		if err := os.MkdirAll(filepath.Join(local, "src", "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		a := writeRandom(t, filepath.Join(local, "src", "a.bin"), 300<<10)
		b := writeRandom(t, filepath.Join(local, "src", "sub", "b.bin"), 10<<10)
		if r := c.Rsync("-a", filepath.Join(local, "src")+"/", dest+":"+remote+"/dst/"); r.ExitCode != 0 {
			t.Fatalf("rsync upload: %s", r)
		}
		sameFile(t, a, filepath.Join(remote, "dst", "a.bin"))
		sameFile(t, b, filepath.Join(remote, "dst", "sub", "b.bin"))
	})

	t.Run("pty", func(t *testing.T) {
		term := c.Interactive(dest)
		checkTermSize(t, term, 24, 80)
		term.Resize(40, 120)
		checkTermSize(t, term, 40, 120)
		term.Send("exit 7\n")
		if code := term.Wait(30 * time.Second); code != 7 {
			t.Fatalf("interactive exit status: want 7, got %d", code)
		}
	})
}

// checkTermSize asks the remote shell for its terminal size until it
// reports rows x cols. A resize travels as an SSH window-change request,
// which may be delivered after keystrokes typed right after it, so the
// first answer may still be the old size.
func checkTermSize(t *testing.T, term *e2e.Term, rows, cols int) {
	t.Helper()
	// $((40+2)) keeps the marker out of the echoed command line.
	re := regexp.MustCompile(`(\d+) (\d+)\r?\nSIZE-42`)
	want := fmt.Sprintf("%d %d", rows, cols)
	var got string
	for i := 0; i < 50; i++ {
		term.Send("stty size; echo SIZE-$((40+2))\n")
		m := term.Expect(re, 30*time.Second)
		got = m[1] + " " + m[2]
		if got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stty size: want %s, last saw %s", want, got)
}

// writeRandom writes n random bytes to path and returns path.
func writeRandom(t testing.TB, path string, n int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// sameFile fails the test unless both files exist with equal contents.
func sameFile(t testing.TB, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("read transferred file: %v", err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(b), want, len(a))
	}
}

// pipeThroughCat sends n random bytes through `ssh ... cat` and checks the
// same bytes come back.
func pipeThroughCat(tb testing.TB, c *e2e.Client, n int64, args ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := c.Command(ctx, "ssh", append(args, "cat")...)
	sent, got := sha256.New(), sha256.New()
	cmd.Stdin = io.TeeReader(io.LimitReader(rand.Reader, n), sent)
	counter := &countingWriter{w: got}
	cmd.Stdout = counter
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("ssh cat: %v\nstderr: %s", err, stderr.String())
	}
	if counter.n != n || !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		tb.Fatalf("cat returned %d bytes (want %d) and the content matches: %v",
			counter.n, n, bytes.Equal(sent.Sum(nil), got.Sum(nil)))
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// BenchmarkNodeDirectCat is the baseline for BenchmarkBastionCat: bytes per
// second through `ssh node cat` with no bastion in between.
func BenchmarkNodeDirectCat(b *testing.B) {
	e2e.RequireSystem(b)
	e2e.RequireAccount(b, "ubuntu")
	ca := e2e.NewTestCA(b)
	node := e2e.StartNode(b, "bench-1", e2e.NodeOptions{TrustedUserCAKeys: ca.PubKey})
	dir := b.TempDir()
	key, pub := e2e.GenerateKey(b, dir, "id_ed25519")
	cert := ca.SignUser(b, pub, []string{"ubuntu"}, "-5m:+1h")
	c := e2e.NewClient(b, e2e.ClientOptions{
		KeyPath: key, CertPath: cert,
		KnownHosts: []string{node.KnownHostsLine()},
		Extra:      []string{"Port " + strings.TrimPrefix(node.Addr, "127.0.0.1:")},
	})
	const n = 64 << 20
	b.SetBytes(n)
	for b.Loop() {
		pipeThroughCat(b, c, n, "ubuntu@127.0.0.1")
	}
}
