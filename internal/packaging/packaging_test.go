// Package packaging tests the files that ship beside the binary: the
// systemd unit (configs/gatehouse.service) and the Dockerfile.
package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// repoFile is the path of a file at the repository root.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Join(filepath.Dir(here), "..", "..", name)
}

// directives parses a systemd unit or a Dockerfile into its non-comment
// lines, continuation lines joined.
func directives(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const unitFile = "configs/gatehouse.service"

// TestSystemdUnitVerifies runs systemd's own checker over the unit; any
// warning it prints fails the test (verify exits 0 on unknown values).
// The ExecStart binary must exist for verify, so a copy points at this
// test's executable.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED: systemd-analyze is not installed (Debian: apt-get install systemd); the unit is not verified")
	}
	data, err := os.ReadFile(repoFile(t, unitFile))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "gatehouse.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/gatehouse", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	// systemd's own exposure score (0 best, 10 worst): 2.0 is "OK".
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 or failure: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "Overall exposure level") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// TestSystemdUnitHardening checks the directives the README promises.
func TestSystemdUnitHardening(t *testing.T) {
	lines := directives(t, repoFile(t, unitFile))
	has := map[string]bool{}
	for _, l := range lines {
		has[l] = true
	}
	for _, want := range []string{
		"User=gatehouse",
		"Group=gatehouse",
		"ProtectSystem=strict",
		"NoNewPrivileges=yes",
		"ReadWritePaths=/var/lib/gatehouse",
		"StateDirectory=gatehouse",
		"PrivateTmp=yes",
		"ProtectHome=yes",
		"CapabilityBoundingSet=",
		"AmbientCapabilities=",
		"ExecStart=/usr/local/bin/gatehouse serve --config /etc/gatehouse/gatehouse.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID",
	} {
		if !has[want] {
			t.Errorf("%s lacks %q", unitFile, want)
		}
	}
	// No capability is granted while the listeners are unprivileged ports.
	for _, l := range lines {
		if (strings.HasPrefix(l, "AmbientCapabilities=") || strings.HasPrefix(l, "CapabilityBoundingSet=")) && !strings.HasSuffix(l, "=") {
			t.Errorf("%s grants a capability: %q (only for port 22, and then commented in by the operator)", unitFile, l)
		}
	}
}

// TestDockerfileLint checks the Dockerfile statically, also where no
// container engine runs (TestDockerImage builds it where one does):
// multi-stage, real base images by default, a non-root user in the final
// stage, the data directory as a volume, the binary as entrypoint.
func TestDockerfileLint(t *testing.T) {
	lines := directives(t, repoFile(t, "Dockerfile"))
	var froms []string
	lastFrom := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l), "FROM ") {
			froms = append(froms, l)
			lastFrom = i
		}
	}
	if len(froms) < 2 || !strings.Contains(strings.ToLower(froms[0]), " as build") {
		t.Fatalf("want a multi-stage build (a named build stage, then a runtime stage), got FROM lines %q", froms)
	}
	// The bases are build arguments only so that TestDockerImage can use
	// stand-ins; users get the real ones, with the Go release go.mod names.
	goLine := ""
	for _, l := range directives(t, repoFile(t, "go.mod")) {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			goLine = v
		}
	}
	parts := strings.Split(goLine, ".")
	if len(parts) < 2 {
		t.Fatalf("go.mod: no go version line (%q)", goLine)
	}
	has := map[string]bool{}
	for _, l := range lines {
		has[l] = true
	}
	for _, want := range []string{
		"ARG GO_IMAGE=golang:" + parts[0] + "." + parts[1] + "-bookworm",
		"ARG RUNTIME_IMAGE=gcr.io/distroless/base-debian12:nonroot",
		"FROM ${GO_IMAGE} AS build",
		"FROM ${RUNTIME_IMAGE}",
	} {
		if !has[want] {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	final := lines[lastFrom:]
	var user, volume, entry string
	for _, l := range final {
		kw, arg, _ := strings.Cut(l, " ")
		switch strings.ToUpper(kw) {
		case "USER":
			user = strings.TrimSpace(arg)
		case "VOLUME":
			volume = arg
		case "ENTRYPOINT":
			entry = arg
		case "RUN":
			t.Errorf("the runtime stage must not RUN anything (distroless has no shell): %q", l)
		}
	}
	name, _, _ := strings.Cut(user, ":")
	if user == "" || name == "root" || name == "0" {
		t.Errorf("the final stage must run as a non-root USER, got %q", user)
	}
	if !strings.Contains(volume, "/var/lib/gatehouse") {
		t.Errorf("the data directory /var/lib/gatehouse must be a VOLUME, got %q", volume)
	}
	if !strings.Contains(entry, "/usr/local/bin/gatehouse") {
		t.Errorf("ENTRYPOINT should be the gatehouse binary, got %q", entry)
	}
	if !strings.Contains(strings.Join(final, "\n"), "--chown=65532:65532 /out/data /var/lib/gatehouse") {
		t.Error("the volume's directory must belong to the runtime user, or a fresh volume is not writable")
	}
	ignore, err := os.ReadFile(repoFile(t, ".dockerignore"))
	if err != nil || !strings.Contains(string(ignore), ".git") || !strings.Contains(string(ignore), "data") {
		t.Errorf(".dockerignore must keep .git and local data out of the build context: %v", err)
	}
}
