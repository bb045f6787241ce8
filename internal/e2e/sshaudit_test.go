package e2e_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSSHAudit runs the independent ssh-audit scanner against the bastion:
// no weak or failing algorithm may be offered, and strict KEX (the Terrapin
// countermeasure) must be announced.
func TestSSHAudit(t *testing.T) {
	path, err := exec.LookPath("ssh-audit")
	if err != nil {
		t.Skip("ssh-audit not installed (apt-get install ssh-audit; .ci/run installs it)")
	}
	gh := startCore(t)
	host, port, _ := strings.Cut(gh.SSHAddr, ":")
	out, _ := exec.Command(path, "--no-colors", "-p", port, host).CombinedOutput()
	text := string(out)
	if !strings.Contains(text, "kex-strict-s-v00@openssh.com") {
		t.Errorf("strict KEX not offered:\n%s", text)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "[fail]") || (strings.Contains(line, "[warn]") && !strings.Contains(line, "unknown algorithm")) {
			t.Errorf("ssh-audit: %s", line)
		}
	}
}
