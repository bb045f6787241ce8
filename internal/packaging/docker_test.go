package packaging

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerRequiredEnv, when set (as .ci/run does after starting dockerd),
// makes TestDockerImage fail instead of skip without a Docker engine.
const dockerRequiredEnv = "GATEHOUSE_DOCKER"

// runtimeUID is the distroless "nonroot" user the image runs as.
const runtimeUID = 65532

// docker runs the docker CLI for one test.
type docker struct {
	t   *testing.T
	bin string
}

// dockerEngine returns the docker CLI if an engine answers and stand-in
// base images can be made here, and skips the test otherwise.
func dockerEngine(t *testing.T) docker {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIPPED: -short; the container image is not built")
	}
	skip := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv(dockerRequiredEnv) != "" {
			t.Fatalf("%s (%s is set, so a Docker engine is required)", msg, dockerRequiredEnv)
		}
		t.Skip("SKIPPED: " + msg + "; the container image is not built")
	}
	bin, err := exec.LookPath("docker")
	if err != nil {
		skip("no docker CLI (Debian: apt-get install docker.io)")
	}
	if _, err := exec.Command(bin, "version", "--format", "{{.Server.Version}}").Output(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = errors.New(firstLine(exit.Stderr))
		}
		skip("no Docker engine answers (start dockerd): %v", err)
	}
	for _, tool := range []string{"apt-cache", "dpkg-query", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("the stand-in base images are made from a Debian host's packages and Go toolchain, and %s is missing", tool)
		}
	}
	return docker{t: t, bin: bin}
}

// run runs docker with args and returns its combined output.
func (d docker) run(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, d.bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, tail(out, 40))
	}
	return string(out), nil
}

// must runs docker with args and fails the test if it fails.
func (d docker) must(ctx context.Context, args ...string) string {
	d.t.Helper()
	out, err := d.run(ctx, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// cleanup removes a docker object when the test ends, whatever happened.
func (d docker) cleanup(args ...string) {
	d.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, d.bin, args...).CombinedOutput(); err != nil {
			d.t.Logf("cleanup: docker %s: %v: %s", strings.Join(args, " "), err, firstLine(out))
		}
	})
}

// importImage imports a stand-in base image as tag and returns its ID.
func (d docker) importImage(ctx context.Context, tag string, s standIn) string {
	d.t.Helper()
	args := []string{"import"}
	for _, c := range s.changes {
		args = append(args, "--change", c)
	}
	args = append(args, "-", tag)
	cmd := exec.CommandContext(ctx, d.bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	written := make(chan error, 1)
	go func() {
		err := s.write(ctx, pw)
		pw.CloseWithError(err)
		written <- err
	}()
	out, err := cmd.CombinedOutput()
	pr.Close() // unblocks the writer if docker stopped reading
	werr := <-written
	if err != nil {
		d.t.Fatalf("docker import %s: %v (root filesystem: %v)\n%s", tag, err, werr, out)
	}
	d.cleanup("rmi", tag)
	if werr != nil {
		d.t.Fatalf("stand-in image %s: %v", tag, werr)
	}
	return strings.TrimSpace(string(out))
}

// removeDescendants removes every image built on the given ones. The
// legacy builder keeps an untagged image per step, and a base cannot be
// removed while it has children; removing the leaves removes the untagged
// images under them.
func (d docker) removeDescendants(bases ...string) {
	d.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ids, err := d.run(ctx, "image", "ls", "--all", "--quiet", "--no-trunc")
		if err != nil || strings.TrimSpace(ids) == "" {
			d.t.Logf("cleanup: %v", err)
			return
		}
		// An image removed meanwhile by someone else fails the inspect
		// but not the lines of the others.
		out, err := d.run(ctx, append([]string{"image", "inspect", "--format", "{{.Id}} {{.Parent}}"}, strings.Fields(ids)...)...)
		if err != nil {
			d.t.Logf("cleanup: %v", err)
		}
		parent := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			id, p, _ := strings.Cut(line, " ")
			parent[id] = p
		}
		ours := map[string]bool{}
		for _, b := range bases {
			ours[b] = true
		}
		var descends func(id string) bool
		descends = func(id string) bool {
			for p := parent[id]; p != ""; p = parent[p] {
				if ours[p] {
					return true
				}
			}
			return false
		}
		hasChild := map[string]bool{}
		for _, p := range parent {
			hasChild[p] = true
		}
		var leaves []string
		for id := range parent {
			if !hasChild[id] && descends(id) {
				leaves = append(leaves, id)
			}
		}
		if len(leaves) > 0 {
			if _, err := d.run(ctx, append([]string{"rmi", "--force"}, leaves...)...); err != nil {
				d.t.Logf("cleanup: %v", err)
			}
		}
	})
}

// build builds the repository's Dockerfile as tag with the given build
// arguments, and logs how long each step took. It uses the legacy builder,
// the one tested here, which takes FROM images from the engine's own (no
// pull) and whose intermediate images removeDescendants knows. The build
// gets half the CPUs: a cold cgo build would otherwise starve the tests
// that run beside it.
func (d docker) build(ctx context.Context, tag string, buildArgs ...string) {
	d.t.Helper()
	cpus := max(runtime.NumCPU()/2, 1)
	args := []string{"build", "--force-rm", "--cpuset-cpus", fmt.Sprintf("0-%d", cpus-1), "-t", tag}
	for _, a := range buildArgs {
		args = append(args, "--build-arg", a)
	}
	cmd := exec.CommandContext(ctx, d.bin, append(args, repoFile(d.t, "."))...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	started := time.Now()
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	var lines, steps []string
	last, step := started, ""
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "Step ") {
			if step != "" {
				steps = append(steps, fmt.Sprintf("%6s  %s", time.Since(last).Round(time.Second), step))
			}
			last, step = time.Now(), sc.Text()
		}
	}
	io.Copy(io.Discard, out) // past an overlong line: docker must not block on a full pipe
	if err := cmd.Wait(); err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, tail([]byte(strings.Join(lines, "\n")), 60))
	}
	steps = append(steps, fmt.Sprintf("%6s  %s", time.Since(last).Round(time.Second), step))
	d.t.Logf("image built in %s on %d CPUs:\n%s", time.Since(started).Round(time.Second), cpus, strings.Join(steps, "\n"))
}

// TestDockerImage builds the Dockerfile and runs the image the way the
// README says: non-root, config mounted read-only, the data directory on a
// named volume. The bases are stand-ins (see standin_test.go), passed with
// the Dockerfile's GO_IMAGE and RUNTIME_IMAGE build arguments.
func TestDockerImage(t *testing.T) {
	d := dockerEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	// Unique names: other test runs may share this engine.
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := "gatehouse-test-" + hex.EncodeToString(b[:])
	goImage, runtimeImage, image := id+"-go:standin", id+"-runtime:standin", id+":latest"
	goID := d.importImage(ctx, goImage, goStandIn())
	runtimeID := d.importImage(ctx, runtimeImage, runtimeStandIn())
	d.removeDescendants(goID, runtimeID) // the build's images, the final one included

	d.build(ctx, image, "GO_IMAGE="+goImage, "RUNTIME_IMAGE="+runtimeImage)

	// The final stage must not carry the Go toolchain or compiler (they
	// alone are several hundred MB); the binary and glibc are tens of MB.
	size, err := strconv.ParseInt(d.must(ctx, "image", "inspect", "--format", "{{.Size}}", image), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image size %d MB", size>>20)
	if size > 150<<20 {
		t.Errorf("image size %d MB: want a runtime-only image under 150 MB", size>>20)
	}
	if got := d.must(ctx, "image", "inspect", "--format", "{{.Config.User}} {{json .Config.Volumes}}", image); got != `65532:65532 {"/var/lib/gatehouse":{}}` {
		t.Errorf("image user and volumes = %s", got)
	}

	if out := d.must(ctx, "run", "--rm", image, "--help"); !strings.Contains(out, "serve") {
		t.Errorf("gatehouse --help in the image does not list serve:\n%s", out)
	}

	etc := configDir(t)
	volume := id + "-data"
	d.must(ctx, "volume", "create", volume)
	d.cleanup("volume", "rm", "--force", volume)
	mounts := []string{"-v", etc + ":/etc/gatehouse:ro", "-v", volume + ":/var/lib/gatehouse"}

	container := id + "-serve"
	d.cleanup("rm", "--force", container)
	d.must(ctx, append(append([]string{"run", "--detach", "--name", container}, mounts...),
		"-p", "127.0.0.1::8080", "-p", "127.0.0.1::2222", image)...)
	logs := func() string { out, _ := d.run(ctx, "logs", container); return tail([]byte(out), 30) }

	web := "http://" + firstLine([]byte(d.must(ctx, "port", container, "8080/tcp")))
	if err := waitHTTP(ctx, web+"/healthz"); err != nil {
		t.Fatalf("healthz: %v\ncontainer log:\n%s", err, logs())
	}
	if code, body := get(ctx, web+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz: %d %s", code, body)
	}
	if banner, err := sshBanner(ctx, firstLine([]byte(d.must(ctx, "port", container, "2222/tcp")))); err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Errorf("ssh listener: banner %q, %v", banner, err)
	}

	pid := d.must(ctx, "inspect", "--format", "{{.State.Pid}}", container)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf("Uid:\t%d\t%[1]d\t%[1]d\t%[1]d", runtimeUID), fmt.Sprintf("Gid:\t%d\t%[1]d\t%[1]d\t%[1]d", runtimeUID)} {
		if !strings.Contains(string(status), want+"\n") {
			t.Errorf("the serving process (pid %s) does not run as %d: /proc status:\n%s", pid, runtimeUID, status)
		}
	}

	out, err := d.run(ctx, "exec", container, "/usr/local/bin/gatehouse", "doctor", "--config", "/etc/gatehouse/gatehouse.yaml")
	t.Logf("gatehouse doctor in the container:\n%s", out)
	if err != nil {
		t.Errorf("doctor: %v", err)
	}
	userCA := d.must(ctx, "exec", container, "/usr/local/bin/gatehouse", "ca", "export", "user", "--config", "/etc/gatehouse/gatehouse.yaml")

	// SIGTERM, as `docker stop` sends it, must stop the bastion cleanly
	// even as PID 1.
	d.must(ctx, "stop", "--time", "30", container)
	if code := d.must(ctx, "inspect", "--format", "{{.State.ExitCode}}", container); code != "0" {
		t.Errorf("exit code after docker stop = %s\ncontainer log:\n%s", code, logs())
	}

	// The state is in the volume, owned by the runtime user.
	dir := d.must(ctx, "volume", "inspect", "--format", "{{.Mountpoint}}", volume)
	for _, name := range []string{".", "user_ca", "host_ca", "host_key", "gatehouse.db", "recordings"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("volume: %v", err)
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != runtimeUID {
			t.Errorf("volume: %s is not owned by %d", name, runtimeUID)
		}
	}

	// A new container on the same volume finds the same CA.
	again := d.must(ctx, append(append([]string{"run", "--rm"}, mounts...),
		image, "ca", "export", "user", "--config", "/etc/gatehouse/gatehouse.yaml")...)
	if again != userCA {
		t.Errorf("user CA after a new container on the volume:\n%s\nwant\n%s", again, userCA)
	}
}

// configDir writes the mounted /etc/gatehouse: listeners on all addresses
// inside the container, the data directory on the volume, the demo roles.
// Everything is world-readable: the container user is not the file owner.
func configDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	roles, err := os.ReadFile(repoFile(t, "configs/roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := `data_dir: /var/lib/gatehouse
roles_file: /etc/gatehouse/roles.yaml
ssh:
  listen: 0.0.0.0:2222
  host_names: [localhost]
web:
  listen: 0.0.0.0:8080
  public_url: http://localhost:8080
`
	for name, body := range map[string][]byte{"gatehouse.yaml": []byte(cfg), "roles.yaml": roles} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		code, body := get(ctx, url)
		if code == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: last answer %d %s: %w", url, code, body, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// get returns the status and first line of the body, or 0 and the error.
func get(ctx context.Context, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, firstLine(body)
}

// sshBanner reads the SSH version line of the server at addr.
func sshBanner(ctx context.Context, addr string) (string, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
