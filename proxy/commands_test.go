package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// TestBastionCommandOutputIsEscaped: a bastion command that forgets to
// escape still cannot reach the user's terminal with a control sequence:
// its stdout and stderr pass termsafe on the way out, newlines kept.
func TestBastionCommandOutputIsEscaped(t *testing.T) {
	dir := t.TempDir()
	auth, err := ca.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(_ context.Context, _ proxy.Identity, _ []string, _ io.Reader, stdout, stderr io.Writer) int {
		fmt.Fprintf(stdout, "line one %s\nline two\n", termsafetest.Payload)
		// A rune split across two writes is put back together.
		_, _ = stderr.Write([]byte("ü\xc3"))
		_, _ = stderr.Write([]byte("\xbc" + termsafetest.Payload + "\n"))
		return 0
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opt := testOptions()
	opt.CA, opt.Authorizer, opt.Sessions, opt.Audit = auth, allowUbuntu{}, st, &memAudit{}
	opt.Commands = map[string]proxy.Command{"raw": raw}
	srv, err := proxy.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	b := &bastion{addr: ln.Addr().String(), auth: auth}
	hostCA := auth.HostCAKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), hostCA) }}
	c, err := ssh.Dial("tcp", b.addr, &ssh.ClientConfig{User: "bob", Auth: []ssh.AuthMethod{ssh.PublicKeys(b.userSigner(t, "bob"))},
		HostKeyCallback: checker.CheckHostKey, HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if err := sess.Run("raw"); err != nil {
		t.Fatal(err)
	}
	termsafetest.Inert(t, "stdout", out.String())
	termsafetest.Inert(t, "stderr", errb.String())
	if want := `line one \x1b]52;c;cHduZWQ=\a`; !bytes.HasPrefix(out.Bytes(), []byte(want)) || !bytes.HasSuffix(out.Bytes(), []byte("\nline two\n")) {
		t.Errorf("stdout %q", out.String())
	}
	if !bytes.HasPrefix(errb.Bytes(), []byte(`üü\x1b]52`)) {
		t.Errorf("stderr %q", errb.String())
	}
}
