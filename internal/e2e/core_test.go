package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/syncbuf"
)

// The bastion's core promises, end to end: `ssh -J bob@bastion login@node`
// behaves like plain ssh for everything a user does (exec, stdin/stdout/
// stderr, exit status, file transfer, pty, port forwarding), and every
// refusal is one clear line that starts with "gatehouse:".

const coreRoles = `
users:
  - {name: bob, roles: [dev]}
  - {name: dana, roles: [dba]}
  - {name: carol, roles: [contractor]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
  - name: dba
    allow:
      logins: [postgres, root]
      node_labels: {team: data}
    options:
      port_forwarding: false
  - name: contractor
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
    options:
      port_forwarding: false
`

// startCore starts a bastion with two real nodes, one whose pinned host key
// is wrong, and one that is down.
func startCore(t *testing.T) *e2e.Gatehouse {
	t.Helper()
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	e2e.RequireAccount(t, "postgres")
	bin := builder.BuildGatehouse(t)
	_, wrongPub := e2e.GenerateKey(t, t.TempDir(), "not_the_node_key")
	return e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  coreRoles,
		Nodes: []e2e.NodeSpec{
			{Name: "db-1", Labels: map[string]string{"env": "prod", "team": "data"}},
			{Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}},
			{Name: "web-2", Labels: map[string]string{"env": "staging", "team": "web"}, PinnedKey: e2e.ReadKeyLine(t, wrongPub)},
			{Name: "old-1", Labels: map[string]string{"env": "staging"}, Down: true},
		},
	})
}

func TestBastionExec(t *testing.T) {
	gh := startCore(t)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	dana := e2e.NewUser(t, gh, "dana", time.Hour)

	t.Run("command output and exit status 0", func(t *testing.T) {
		r := bob.SSH("ubuntu@web-1", "id -un")
		if r.ExitCode != 0 || r.Stdout != "ubuntu\n" {
			t.Fatalf("want ubuntu and exit 0, got %s", r)
		}
	})
	t.Run("another user, login and node", func(t *testing.T) {
		r := dana.SSH("postgres@db-1", "id -un")
		if r.ExitCode != 0 || r.Stdout != "postgres\n" {
			t.Fatalf("want postgres and exit 0, got %s", r)
		}
	})
	t.Run("exit status is passed through", func(t *testing.T) {
		r := bob.SSH("ubuntu@web-1", "exit 3")
		if r.ExitCode != 3 {
			t.Fatalf("want exit 3, got %s", r)
		}
	})
	t.Run("stderr stays separate from stdout", func(t *testing.T) {
		r := bob.SSH("ubuntu@web-1", "echo to-out; echo to-err >&2")
		if r.ExitCode != 0 || r.Stdout != "to-out\n" || !strings.Contains(r.Stderr, "to-err\n") {
			t.Fatalf("want to-out on stdout only and to-err on stderr, got %s", r)
		}
	})
	t.Run("stdin reaches the command and its end is seen", func(t *testing.T) {
		// cat only exits when it reads EOF, so finishing proves EOF was relayed.
		r := bob.SSHInput(strings.NewReader("line one\nline two\n"), "ubuntu@web-1", "cat; echo done")
		if r.ExitCode != 0 || r.Stdout != "line one\nline two\ndone\n" {
			t.Fatalf("want the input echoed then done, got %s", r)
		}
	})
	t.Run("64 MiB through cat", func(t *testing.T) {
		pipeThroughCat(t, bob.Client, 64<<20, "ubuntu@web-1")
	})
}

func TestBastionFileTransfer(t *testing.T) {
	gh := startCore(t)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	dest := "ubuntu@web-1"

	t.Run("scp", func(t *testing.T) {
		for _, mode := range []struct{ name, flag string }{{"sftp protocol", "-s"}, {"legacy protocol", "-O"}} {
			t.Run(mode.name, func(t *testing.T) {
				remote, local := e2e.RemoteDir(t, "ubuntu"), t.TempDir()
				src := writeRandom(t, filepath.Join(local, "up.bin"), 4<<20)
				if r := bob.SCP(mode.flag, src, dest+":"+remote+"/up.bin"); r.ExitCode != 0 {
					t.Fatalf("scp upload: %s", r)
				}
				sameFile(t, src, filepath.Join(remote, "up.bin"))
				back := filepath.Join(local, "down.bin")
				if r := bob.SCP(mode.flag, dest+":"+remote+"/up.bin", back); r.ExitCode != 0 {
					t.Fatalf("scp download: %s", r)
				}
				sameFile(t, src, back)
			})
		}
	})

	t.Run("sftp batch put ls get", func(t *testing.T) {
		remote, local := e2e.RemoteDir(t, "ubuntu"), t.TempDir()
		src := writeRandom(t, filepath.Join(local, "s.bin"), 1<<20)
		back := filepath.Join(local, "back.bin")
		r := bob.SFTP(dest, "put "+src+" "+remote+"/s.bin", "ls -l "+remote, "get "+remote+"/s.bin "+back)
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "s.bin") {
			t.Fatalf("sftp batch: %s", r)
		}
		sameFile(t, src, filepath.Join(remote, "s.bin"))
		sameFile(t, src, back)
	})

	t.Run("rsync both ways", func(t *testing.T) {
		remote, local := e2e.RemoteDir(t, "ubuntu"), t.TempDir()
		if err := os.MkdirAll(filepath.Join(local, "src", "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		a := writeRandom(t, filepath.Join(local, "src", "a.bin"), 2<<20)
		b := writeRandom(t, filepath.Join(local, "src", "sub", "b.bin"), 10<<10)
		if r := bob.Rsync("-a", filepath.Join(local, "src")+"/", dest+":"+remote+"/dst/"); r.ExitCode != 0 {
			t.Fatalf("rsync upload: %s", r)
		}
		sameFile(t, a, filepath.Join(remote, "dst", "a.bin"))
		sameFile(t, b, filepath.Join(remote, "dst", "sub", "b.bin"))
		if r := bob.Rsync("-a", dest+":"+remote+"/dst/", filepath.Join(local, "copy")+"/"); r.ExitCode != 0 {
			t.Fatalf("rsync download: %s", r)
		}
		sameFile(t, a, filepath.Join(local, "copy", "a.bin"))
		sameFile(t, b, filepath.Join(local, "copy", "sub", "b.bin"))
	})
}

func TestBastionInteractive(t *testing.T) {
	gh := startCore(t)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)

	term := bob.Interactive("ubuntu@web-1")
	term.Send("id -un; echo WHO-$((1+1))\n")
	term.Expect(regexp.MustCompile(`ubuntu\r?\nWHO-2`), 60*time.Second)
	checkTermSize(t, term, 24, 80)
	term.Resize(40, 120)
	checkTermSize(t, term, 40, 120)
	term.Send("exit 5\n")
	if code := term.Wait(30 * time.Second); code != 5 {
		t.Fatalf("interactive session exit status: want 5, got %d; output %q", code, term.Output())
	}
}

func TestBastionPortForwarding(t *testing.T) {
	gh := startCore(t)
	echo := startEchoServer(t)

	tests := []struct {
		user   string
		wantOK bool
	}{
		{"bob", true},    // dev: forwarding not restricted
		{"carol", false}, // contractor: port_forwarding: false
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			u := e2e.NewUser(t, gh, tc.user, time.Hour)
			before := echo.accepted.Load()
			local := startLocalForward(t, u, "ubuntu@web-1", echo.addr)
			conn, err := net.Dial("tcp", local)
			if err != nil {
				t.Fatalf("dial the forwarded port: %v", err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
			if _, err := conn.Write([]byte("ping\n")); err != nil && tc.wantOK {
				t.Fatalf("write to the forwarded port: %v", err)
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if tc.wantOK {
				if err != nil || line != "ping\n" {
					t.Fatalf("want ping echoed through the tunnel, got %q, %v", line, err)
				}
				return
			}
			if err == nil || line != "" {
				t.Fatalf("forwarding should be refused, but read %q", line)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("forwarding should be refused and the connection closed, but it hung")
			}
			if n := echo.accepted.Load(); n != before {
				t.Fatalf("refused forward still reached the target (%d connections)", n-before)
			}
		})
	}
}

// startLocalForward runs `ssh -L 127.0.0.1:PORT:target dest` for u and
// returns the local end once ssh listens on it.
func startLocalForward(t *testing.T, u *e2e.User, dest, target string) string {
	t.Helper()
	local := fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// ssh binds -L listeners before it opens the session, so once the
	// remote command prints, the forward is listening. cat keeps the
	// session open until we close its stdin.
	cmd := u.Command(ctx, "ssh", "-o", "ExitOnForwardFailure=yes", "-L", local+":"+target,
		dest, "echo forward-ready; cat >/dev/null")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ssh -L: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			cancel()
			<-waited
		}
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if line != "forward-ready\n" {
			t.Fatalf("ssh -L did not start its session: stdout %q, stderr %s", line, stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("ssh -L not ready; stderr %s", stderr.String())
	}
	return local
}

type echoServer struct {
	addr     string
	accepted atomic.Int64
}

// startEchoServer runs a TCP echo server on loopback, the "service on the
// node side" that port forwarding tests reach (nodes run on this machine).
func startEchoServer(t *testing.T) *echoServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// TestBastionRefusals: every refused jump fails without running anything,
// and says why in one line starting with "gatehouse:".
func TestBastionRefusals(t *testing.T) {
	gh := startCore(t)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)

	tests := []struct {
		name string
		dest string
		want []*regexp.Regexp // all must match stderr
	}{
		{"unknown node", "ubuntu@nope-9", res(`gatehouse:.*nope-9`)},
		{"login not allowed", "root@web-1", res(`gatehouse:.*root`, `web-1`)},
		{"node not allowed", "ubuntu@db-1", res(`gatehouse:.*db-1`)},
		{"node host key mismatch", "ubuntu@web-2", res(`gatehouse:.*web-2`, `(?i)host key`)},
		{"node down", "ubuntu@old-1", res(`gatehouse: cannot reach`, `old-1`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bob.SSH(tc.dest, "echo SHOULD-NOT-RUN")
			if r.ExitCode == 0 || strings.Contains(r.Stdout, "SHOULD-NOT-RUN") {
				t.Fatalf("want a refusal, got %s", r)
			}
			for _, re := range tc.want {
				if !re.MatchString(r.Stderr) {
					t.Errorf("stderr does not match %q:\n%s", re, r.Stderr)
				}
			}
			// Nothing about other users may leak into a refusal.
			for _, other := range []string{"dana", "carol"} {
				if strings.Contains(r.Stderr, other) {
					t.Errorf("refusal mentions another user %q:\n%s", other, r.Stderr)
				}
			}
		})
	}

	t.Run("certificate from another CA", func(t *testing.T) {
		dir := t.TempDir()
		key, pub := e2e.GenerateKey(t, dir, "id_ed25519")
		cert := e2e.NewTestCA(t).SignUser(t, pub, []string{"bob"}, "-5m:+1h")
		mallory := e2e.NewUserWithCert(t, gh, "bob", key, cert)
		refusedAtBastion(t, mallory)
	})

	t.Run("bastion certificate used directly on a node", func(t *testing.T) {
		// Nodes trust the user CA that also signs users' bastion
		// certificates, so a user's certificate must not name a node
		// login; otherwise skipping the bastion would skip policy and
		// recording too.
		web1 := gh.Node("web-1")
		direct := e2e.NewClient(t, e2e.ClientOptions{
			KeyPath:    bob.KeyPath,
			CertPath:   bob.CertPath,
			KnownHosts: []string{web1.KnownHostsLine()},
		})
		for _, login := range []string{"ubuntu", "root", "bob"} {
			r := direct.SSH(append(web1.Target(login), "echo SHOULD-NOT-RUN")...)
			if r.ExitCode != 255 || strings.Contains(r.Stdout, "SHOULD-NOT-RUN") {
				t.Errorf("bob's certificate logged straight into web-1 as %s: %s", login, r)
			}
		}
	})

	t.Run("expired certificate", func(t *testing.T) {
		u := e2e.NewUser(t, gh, "bob", time.Second)
		// Certificate times have one-second resolution; wait until it is
		// certainly past its end.
		time.Sleep(3 * time.Second)
		refusedAtBastion(t, u)
	})
}

// refusedAtBastion checks the bastion turns u away before any node or
// bastion command is reached.
func refusedAtBastion(t *testing.T, u *e2e.User) {
	t.Helper()
	r := u.SSH("ubuntu@web-1", "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || strings.Contains(r.Stdout, "SHOULD-NOT-RUN") {
		t.Errorf("jump: want the bastion to refuse the connection (exit 255), got %s", r)
	}
	r = u.Bastion("whoami")
	if r.ExitCode != 255 || r.Stdout != "" {
		t.Errorf("whoami: want the bastion to refuse the connection (exit 255), got %s", r)
	}
}

func res(patterns ...string) []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, p := range patterns {
		out = append(out, regexp.MustCompile(p))
	}
	return out
}

// TestBastionCommands covers `ssh bob@bastion whoami` and `nodes`.
func TestBastionCommands(t *testing.T) {
	gh := startCore(t)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	dana := e2e.NewUser(t, gh, "dana", time.Hour)

	r := bob.Bastion("whoami")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "bob") || !strings.Contains(r.Stdout, "dev") {
		t.Errorf("bob whoami: want his name and role dev, got %s", r)
	}

	tests := []struct {
		user      *e2e.User
		reachable []string
		hidden    []string
	}{
		{bob, []string{"web-1"}, []string{"db-1"}},
		{dana, []string{"db-1"}, []string{"web-1", "web-2", "old-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.user.Name+" nodes", func(t *testing.T) {
			r := tc.user.Bastion("nodes")
			if r.ExitCode != 0 {
				t.Fatalf("nodes: %s", r)
			}
			for _, n := range tc.reachable {
				if !regexp.MustCompile(`\b` + regexp.QuoteMeta(n) + `\b`).MatchString(r.Stdout) {
					t.Errorf("nodes should list %s:\n%s", n, r.Stdout)
				}
			}
			for _, n := range tc.hidden {
				if regexp.MustCompile(`\b` + regexp.QuoteMeta(n) + `\b`).MatchString(r.Stdout) {
					t.Errorf("nodes should not list %s:\n%s", n, r.Stdout)
				}
			}
		})
	}

	t.Run("unknown command", func(t *testing.T) {
		r := bob.Bastion("frobnicate")
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, "gatehouse:") {
			t.Fatalf("want a gatehouse: error for an unknown command, got %s", r)
		}
	})
}

// TestBastionRolesReload: a roles.yaml change takes effect after SIGHUP
// without restarting the bastion.
func TestBastionRolesReload(t *testing.T) {
	gh := startCore(t)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	if r := bob.SSH("ubuntu@db-1", "true"); r.ExitCode == 0 {
		t.Fatalf("bob should not reach db-1 yet: %s", r)
	}
	gh.WriteRoles(strings.Replace(coreRoles, "node_labels: {env: staging}", "node_labels: {team: data}", 1))
	gh.Reload()
	// Reload is asynchronous; poll until the new rules apply.
	var r e2e.Result
	for i := 0; i < 100; i++ {
		if r = bob.SSH("ubuntu@db-1", "id -un"); r.ExitCode == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.ExitCode != 0 || r.Stdout != "ubuntu\n" {
		t.Fatalf("after reload bob should reach db-1 as ubuntu: %s", r)
	}
}

// BenchmarkBastionCat measures bytes per second through
// `ssh -J bob@bastion ubuntu@web-1 cat`; compare with
// BenchmarkNodeDirectCat for the bastion's overhead.
func BenchmarkBastionCat(b *testing.B) {
	e2e.RequireSystem(b)
	e2e.RequireAccount(b, "ubuntu")
	gh := e2e.StartGatehouse(b, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(b),
		Roles:  coreRoles,
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
	})
	bob := e2e.NewUser(b, gh, "bob", time.Hour)
	const n = 64 << 20
	b.SetBytes(n)
	for b.Loop() {
		pipeThroughCat(b, bob.Client, n, "ubuntu@web-1")
	}
}

// TestBastionRolesReloadNarrows: a reload that takes access away ends the
// live sessions it no longer allows, with a notice on the user's terminal,
// leaves the others alone, and is audited.
func TestBastionRolesReloadNarrows(t *testing.T) {
	gh := startCore(t)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	dana := e2e.NewUser(t, gh, "dana", time.Hour)

	bobTerm := bob.Interactive("ubuntu@web-1")
	bobTerm.Send("echo BOB-$((20+1))\n")
	bobTerm.Expect(regexp.MustCompile(`BOB-21`), 60*time.Second)
	danaTerm := dana.Interactive("postgres@db-1")
	danaTerm.Send("echo DANA-$((20+2))\n")
	danaTerm.Expect(regexp.MustCompile(`DANA-22`), 60*time.Second)

	// dev no longer reaches staging; dba is untouched.
	gh.WriteRoles(strings.Replace(coreRoles, "node_labels: {env: staging}", "node_labels: {env: nowhere}", 1))
	gh.Reload()

	bobTerm.Expect(regexp.MustCompile(`gatehouse: access as ubuntu on web-1 is no longer allowed`), 30*time.Second)
	if code := bobTerm.Wait(30 * time.Second); code == 0 {
		t.Errorf("bob's session should end with a failure status, got 0")
	}
	// dana's session still works.
	danaTerm.Send("echo STILL-$((40+2))\n")
	danaTerm.Expect(regexp.MustCompile(`STILL-42`), 30*time.Second)
	danaTerm.Send("exit\n")
	danaTerm.Wait(30 * time.Second)

	r := gh.MustRun("audit", "ls", "--type", "session.terminated", "--json")
	if !strings.Contains(r.Stdout, `"user":"bob"`) || strings.Contains(r.Stdout, `"user":"dana"`) {
		t.Errorf("want one session.terminated event for bob only, got:\n%s", r.Stdout)
	}
	if r := gh.MustRun("audit", "ls", "--type", "policy.reload", "--json"); !strings.Contains(r.Stdout, "policy.reload") {
		t.Errorf("policy reload not audited:\n%s", r.Stdout)
	}
}
