// Package testbin finds the third-party programs the tests run against
// (an S3 server, an SMTP server, an OpenID provider), installed with
// `go install` by .ci/run. One rule for all of them: when the program's
// environment variable is set (CI sets it) the program must be there and
// be the right one, or the test fails; otherwise the test looks in
// $(go env GOPATH)/bin and skips, loudly and saying how to install it,
// when the program is not there.
package testbin

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Program is one third-party program the tests run.
type Program struct {
	// Name is what skip and failure messages call it, e.g. "versitygw".
	Name string
	// Package is its main package as `go install` takes it and as its
	// build information names it.
	Package string
	// Version is what .ci/run installs.
	Version string
	// Binary is the file name `go install` writes under GOPATH/bin.
	Binary string
	// Env names the variable that, when set, gives the binary's path and
	// makes the program required.
	Env string
}

// Install is the command that installs p.
func (p Program) Install() string {
	return "go install " + p.Package + "@" + p.Version + " (or run .ci/run)"
}

// Find returns p's path. It fails t when p.Env names a binary that is
// missing or is another program, and skips t when p is simply not
// installed.
func (p Program) Find(t testing.TB) string {
	t.Helper()
	path, required := os.LookupEnv(p.Env)
	if !required {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		gopath := strings.TrimSpace(string(out))
		if err != nil || gopath == "" {
			t.Skipf("SKIPPING: cannot find GOPATH (%v) to look for %s; %s, or set %s", err, p.Name, p.Install(), p.Env)
		}
		path = filepath.Join(filepath.SplitList(gopath)[0], "bin", p.Binary)
	}
	info, err := buildinfo.ReadFile(path)
	if err == nil && info.Path != p.Package {
		err = fmt.Errorf("it is %q, not %s", info.Path, p.Package)
	}
	if err != nil {
		if required {
			t.Fatalf("%s=%s: %s is not usable there: %v; %s", p.Env, path, p.Name, err, p.Install())
		}
		t.Skipf("SKIPPING: %s is not usable at %s (%v); %s, or set %s", p.Name, path, err, p.Install(), p.Env)
	}
	t.Logf("%s: %s (%s %s)", p.Name, path, info.Main.Path, info.Main.Version)
	return path
}
