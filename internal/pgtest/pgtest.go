package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable that points tests at an existing
// server instead of a throwaway cluster. Its role must be allowed to
// CREATE DATABASE: every test gets a database of its own.
const EnvDSN = "GATEHOUSE_TEST_PG_DSN"

// adminTimeout bounds every administrative statement and server command;
// a wedged test server should fail the test, not hang it until go test's
// ten-minute alarm.
const adminTimeout = 60 * time.Second

// Cluster is a PostgreSQL server for tests: either a throwaway cluster this
// package created, or the external server named by $GATEHOUSE_TEST_PG_DSN.
type Cluster struct {
	adminDSN string // connects to the maintenance database "postgres"
	external bool

	// Set for throwaway clusters only.
	binDir  string
	baseDir string // owned by the server's OS user; holds data/, socket, log
	port    int
	runAs   string // OS user to run server binaries as, "" for ourselves

	mu      sync.Mutex
	running bool
	closed  bool
}

// Start gives the test a fresh, empty database and returns its DSN. stop
// tears everything down; it is also registered with t.Cleanup, so calling
// it is optional, and calling it twice is harmless. Without a usable
// server Start skips the test, saying why on stderr as well.
func Start(t testing.TB) (dsn string, stop func()) {
	t.Helper()
	c := StartCluster(t)
	return c.NewDatabase(t), c.Close
}

// StartCluster returns a running server, skipping the test when none can be
// had. Use it directly when one test needs several databases or needs to
// stop and restart the server; Close is registered with t.Cleanup.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return &Cluster{adminDSN: dsn, external: true}
	}
	binDir, err := findBinDir()
	if err != nil {
		skipLoudly(t, "no PostgreSQL server binaries (%v); install postgresql or set %s", err, EnvDSN)
	}
	runAs := ""
	if os.Geteuid() == 0 {
		// The server refuses to run as root.
		if _, err := user.Lookup("postgres"); err != nil {
			skipLoudly(t, "running as root and there is no postgres OS user to run the server as; set %s", EnvDSN)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			skipLoudly(t, "running as root and runuser is missing, so the server cannot be started as postgres; set %s", EnvDSN)
		}
		runAs = "postgres"
	}
	c, err := newCluster(binDir, runAs)
	if err != nil {
		t.Fatalf("pgtest: start throwaway PostgreSQL cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func skipLoudly(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf("pgtest: SKIPPING PostgreSQL test %s: "+format, append([]any{t.Name()}, args...)...)
	// t.Skip is silent without -v, and a quietly skipped backend looks
	// exactly like a passing one.
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
}

// findBinDir locates initdb and pg_ctl: on PATH, else the newest Debian
// /usr/lib/postgresql/<major>/bin.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", fmt.Errorf("initdb not on PATH nor in /usr/lib/postgresql/*/bin")
	}
	major := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return major(matches[i]) < major(matches[j]) })
	return filepath.Dir(matches[len(matches)-1]), nil
}

func newCluster(binDir, runAs string) (*Cluster, error) {
	// Not t.TempDir: that is private to our user and the server may run as
	// another one.
	base, err := os.MkdirTemp("", "gatehouse-pg-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c := &Cluster{binDir: binDir, baseDir: base, runAs: runAs}
	if runAs != "" {
		if err := chownTo(base, runAs); err != nil {
			_ = os.RemoveAll(base)
			return nil, err
		}
	}
	if out, err := c.run("initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		_ = os.RemoveAll(base)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A free port can be taken between probing and binding, so try a few.
	var lastErr error
	for range 5 {
		if c.port, err = freePort(); err != nil {
			_ = os.RemoveAll(base)
			return nil, err
		}
		if lastErr = c.start(); lastErr == nil {
			c.adminDSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
			return c, nil
		}
	}
	_ = os.RemoveAll(base)
	return nil, lastErr
}

func chownTo(path, username string) error {
	u, err := user.Lookup(username)
	if err != nil {
		return fmt.Errorf("look up OS user %s: %w", username, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("hand %s to OS user %s: %w", path, username, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.baseDir, "data") }

// run runs a server binary as the cluster's OS user and returns its output.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	bin := filepath.Join(c.binDir, name)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	// The test's working directory may be unreadable for the server's user.
	cmd.Dir = c.baseDir
	return cmd.CombinedOutput()
}

// start launches the server and waits until it accepts connections.
// Durability settings are off: the cluster is thrown away after the test,
// and fsync on a shared 2-core CI box is the slowest part of every test.
func (c *Cluster) start() error {
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
		c.baseDir, c.port)
	out, err := c.run("pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.baseDir, "server.log"),
		"-w", "-t", strconv.Itoa(int(adminTimeout/time.Second)), "-o", opts, "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.baseDir, "server.log"))
		return fmt.Errorf("pg_ctl start on port %d: %w\n%s\nserver log:\n%s", c.port, err, out, log)
	}
	c.running = true
	return nil
}

func (c *Cluster) stop() error {
	out, err := c.run("pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	c.running = false
	return nil
}

// AdminDSN connects to the cluster's maintenance database as a superuser.
func (c *Cluster) AdminDSN() string { return c.adminDSN }

// CanRestart reports whether Stop and Restart can work: only for a cluster
// this package started, never for an external server.
func (c *Cluster) CanRestart() bool { return !c.external }

// NewDatabase creates an empty database with a unique name and returns a DSN
// for it. On an external server the database is dropped at cleanup.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := "gatehouse_test_" + randomHex(6)
	if err := c.admin(fmt.Sprintf("CREATE DATABASE %s", pgx.Identifier{name}.Sanitize())); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if c.external {
		t.Cleanup(func() {
			if err := c.admin(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
				t.Errorf("pgtest: %v", err)
			}
		})
	}
	dsn, err := withDatabase(c.adminDSN, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

func (c *Cluster) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.adminDSN)
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// withDatabase returns dsn with its database replaced by name, for both the
// URL and the keyword=value form.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// In keyword=value form a later keyword overrides an earlier one.
	return dsn + " dbname=" + name, nil
}

// Stop shuts the server down, keeping its data, so a test can watch clients
// fail and then recover after Restart. It skips the test on an external
// server, which is not ours to stop.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if c.external {
		skipLoudly(t, "cannot stop the external server named by %s", EnvDSN)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart starts a stopped server again on the same port, so DSNs handed
// out earlier stay valid.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if c.external {
		skipLoudly(t, "cannot restart the external server named by %s", EnvDSN)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Close stops a throwaway server and deletes its files. It does nothing to
// an external server (its test databases are dropped by their own cleanup).
// It is idempotent.
func (c *Cluster) Close() {
	if c.external {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.running {
		if err := c.stop(); err != nil {
			// Deleting the data directory under a live server would leave
			// a stray postmaster; say so rather than hide it.
			fmt.Fprintf(os.Stderr, "pgtest: %v (cluster left in %s)\n", err, c.baseDir)
			return
		}
	}
	_ = os.RemoveAll(c.baseDir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
