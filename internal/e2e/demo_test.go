package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/syncbuf"
)

// TestDemoScript runs `make run`'s scripts/demo.sh on non-default ports,
// as root and as a normal user (the ubuntu account .ci/run creates), waits
// for its "ready" line, then runs every command it printed after it, in
// order, as the same user, and checks that each does what its comment says.
// The approve step gets the id the request step printed.
func TestDemoScript(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the demo as root and as another user (.ci/run runs tests as root)")
	}
	e2e.RequireProgram(t, "ssh")
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("needs /usr/sbin/sshd")
	}
	bin := builder.BuildGatehouse(t)
	t.Run("root", func(t *testing.T) { runDemo(t, bin, nil) })
	t.Run("normal user", func(t *testing.T) {
		u, err := user.Lookup("ubuntu")
		if err != nil {
			t.Skip("no ubuntu account to run the demo as a normal user")
		}
		// The user needs their own copy of the binary and a demo folder.
		dir := t.TempDir()
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		own := filepath.Join(dir, "gatehouse")
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(own, data, 0o755); err != nil {
			t.Fatal(err)
		}
		run := filepath.Join(dir, "run")
		if err := os.Mkdir(run, 0o700); err != nil {
			t.Fatal(err)
		}
		var uid, gid int
		fmt.Sscan(u.Uid, &uid)
		fmt.Sscan(u.Gid, &gid)
		if err := os.Chown(run, uid, gid); err != nil {
			t.Fatal(err)
		}
		runDemo(t, own, []string{"runuser", "-u", "ubuntu", "--"}, "GATEHOUSE_DEMO_DIR="+run)
	})
}

// runDemo runs the demo and its printed commands, each under the command
// prefix as (nil: as root); extra overrides the environment.
func runDemo(t *testing.T, bin string, as []string, extra ...string) {
	dir := t.TempDir()
	nodePort := twoFreePorts(t)
	env := append(os.Environ(),
		"GATEHOUSE_BIN="+bin,
		"GATEHOUSE_DEMO_DIR="+dir,
		fmt.Sprintf("GATEHOUSE_SSH_PORT=%d", e2e.FreePort(t)),
		fmt.Sprintf("GATEHOUSE_WEB_PORT=%d", e2e.FreePort(t)),
		fmt.Sprintf("GATEHOUSE_IDP_PORT=%d", e2e.FreePort(t)),
		fmt.Sprintf("GATEHOUSE_NODE_PORT=%d", nodePort),
	)
	env = append(env, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(as2(as, "bash", script)[0], as2(as, "bash", script)[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Read while the script runs (the no-warning check at "ready").
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start demo.sh: %v", err)
	}
	t.Cleanup(func() {
		// The script stops its bastion, provider and nodes on SIGTERM;
		// its process group is ours alone (Setpgid above).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("demo.sh stderr:\n%s", stderr.String())
		}
	})

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	var printed, beforeReady []string
	var seenReady, inTry bool
collect:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo.sh ended before printing its commands (ready: %v); printed:\n%s", seenReady, strings.Join(printed, "\n"))
			}
			switch {
			case l == "ready":
				seenReady = true
				// A normal start warns about nothing: the provider
				// answers before the bastion starts, and so on.
				for _, out := range append(beforeReady, strings.Split(stderr.String(), "\n")...) {
					if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
						t.Errorf("demo.sh printed a warning before ready: %s", out)
					}
				}
			case !seenReady:
				beforeReady = append(beforeReady, l)
			case strings.HasPrefix(l, "Try, in another terminal"):
				inTry = true
			case strings.HasPrefix(l, "Press Ctrl-C"):
				break collect
			case inTry && strings.HasPrefix(l, "  "):
				printed = append(printed, strings.TrimSpace(l))
			}
		case <-ctx.Done():
			t.Fatalf("demo.sh printed no ready line in time")
		}
	}
	go func() { // keep the pipe drained while the commands run
		for range lines {
		}
	}()
	if len(printed) < 7 {
		t.Fatalf("demo.sh printed %d commands, want the 7 of the walkthrough:\n%s", len(printed), strings.Join(printed, "\n"))
	}

	idLine := regexp.MustCompile(`(?m)^id: (\S+)$`)
	dbLogin := regexp.MustCompile(`(\S+)@db-1`)
	requestID := ""
	for _, line := range printed {
		command, comment, ok := strings.Cut(line, "   # ")
		if !ok {
			t.Fatalf("printed command without a comment saying what it does: %q", line)
		}
		if !strings.Contains(command, "/") || strings.Contains(command, ".run/") {
			t.Errorf("printed command does not use absolute paths: %q", command)
		}
		if strings.Contains(command, " ID") {
			if requestID == "" {
				t.Fatalf("%q needs the request id, but no earlier command printed one", command)
			}
			command = strings.Replace(command, " ID", " "+requestID, 1)
		}
		r := runShell(ctx, t, env, as, command)
		t.Logf("$ %s   # %s\nexit %d\n%s%s", command, comment, r.code, r.stdout, r.stderr)
		check := func(cond bool, what string) {
			if !cond {
				t.Errorf("%s: %s; exit %d\nstdout: %s\nstderr: %s", command, what, r.code, r.stdout, r.stderr)
			}
		}
		switch {
		case strings.HasPrefix(comment, "allowed"):
			check(r.code == 0 && strings.HasPrefix(r.stdout, "Linux "), "want uname output from web-1")
		case strings.HasPrefix(comment, "refused"):
			check(r.code != 0 && strings.Contains(r.stderr, "may not log in as") && strings.Contains(r.stderr, "request one with: ssh bastion request dba"), "want the one-line refusal naming the request command")
		case strings.HasPrefix(comment, "prints id"):
			m := idLine.FindStringSubmatch(r.stdout)
			check(r.code == 0 && m != nil, "want an id: line")
			if m != nil {
				requestID = m[1]
			}
		case strings.HasPrefix(comment, "approves"):
			check(r.code == 0 && strings.Contains(r.stdout, "APPROVED"), "want the request APPROVED")
		case strings.HasPrefix(comment, "now allowed"):
			login := ""
			if m := dbLogin.FindStringSubmatch(command); m != nil {
				login = m[1]
			}
			check(r.code == 0 && r.stdout == login+"\n", "want id -un to print "+login)
		case strings.HasPrefix(comment, "lists the sessions"):
			check(r.code == 0 && strings.Contains(r.stdout, "web-1") && strings.Contains(r.stdout, "db-1"), "want the web-1 and db-1 sessions listed")
		case strings.HasPrefix(comment, "audit log intact"):
			check(r.code == 0 && strings.Contains(r.stdout, "audit log intact"), "want the audit chain intact")
		default:
			t.Errorf("no check for printed command %q (# %s): add one", command, comment)
		}
	}
	offeredLoginsWork(ctx, t, env, as, printed)
}

// offeredLoginsWork logs in as bob and alice with every login `ssh bastion
// nodes` offers them (the web Home page lists the same logins), so the
// demo never offers an account that does not exist on this machine. Bob
// holds dba by now, so his db-1 login is among them.
func offeredLoginsWork(ctx context.Context, t *testing.T, env, as, printed []string) {
	t.Helper()
	var bobConfig string
	configFlag := regexp.MustCompile(`-F (\S+/ssh_config\.bob) `)
	for _, line := range printed {
		if m := configFlag.FindStringSubmatch(line); m != nil {
			bobConfig = m[1]
			break
		}
	}
	if bobConfig == "" {
		t.Fatal("no printed command uses ssh_config.bob")
	}
	for _, u := range []string{"bob", "alice"} {
		config := strings.TrimSuffix(bobConfig, "bob") + u
		r := runShell(ctx, t, env, as, "ssh -F "+config+" bastion nodes")
		if r.code != 0 {
			t.Fatalf("ssh bastion nodes as %s: exit %d\n%s%s", u, r.code, r.stdout, r.stderr)
		}
		offered := 0
		for _, row := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
			f := strings.Fields(row)
			if len(f) < 2 {
				t.Fatalf("ssh bastion nodes as %s: unexpected row %q in\n%s", u, row, r.stdout)
			}
			for _, login := range strings.Split(f[1], ",") {
				offered++
				command := fmt.Sprintf("ssh -F %s -J bastion %s@%s id -un", config, login, f[0])
				r := runShell(ctx, t, env, as, command)
				t.Logf("$ %s   # offered to %s\nexit %d\n%s%s", command, u, r.code, r.stdout, r.stderr)
				if r.code != 0 || r.stdout != login+"\n" {
					t.Errorf("%s is offered %s@%s, but logging in fails: exit %d\n%s%s", u, login, f[0], r.code, r.stdout, r.stderr)
				}
			}
		}
		if offered == 0 {
			t.Errorf("ssh bastion nodes offers %s no login:\n%s", u, r.stdout)
		}
	}
}

type shellResult struct {
	code           int
	stdout, stderr string
}

// runShell runs a printed command line as a user would paste it.
func runShell(ctx context.Context, t *testing.T, env, as []string, line string) shellResult {
	t.Helper()
	argv := as2(as, "bash", "-c", line)
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = env
	c.Dir = "/" // the printed paths must not depend on the directory
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %q: %v", line, err)
		}
		code = ee.ExitCode()
	}
	return shellResult{code, o.String(), e.String()}
}

// twoFreePorts finds P such that P and P+1 are free (db-1 and web-1).
func twoFreePorts(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := e2e.FreePort(t)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free ports")
	return 0
}

// as2 is argv run through the prefix as (e.g. runuser -u ubuntu --).
func as2(as []string, argv ...string) []string {
	return append(append([]string{}, as...), argv...)
}
