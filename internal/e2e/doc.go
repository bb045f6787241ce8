// Package e2e is the end-to-end test harness every Gatehouse feature test
// reuses. It runs the real things on loopback: the `gatehouse` binary built
// from ./cmd/gatehouse, stock OpenSSH sshd processes as nodes (each with its
// own sshd_config, host key and TrustedUserCAKeys), and the OpenSSH
// ssh/scp/sftp/rsync clients driven through `ssh -J` exactly as a user
// would type them, including interactive sessions under a real pty. Other
// SSH client stacks jump through the bastion too (Paramiko and AsyncSSH
// scripts in testdata run by Debian's /usr/bin/python3, Ansible, Go's
// x/crypto): see thirdparty.go.
//
// Everything a test starts lives in the test's temporary directory and is
// stopped in t.Cleanup; logs of every process are written to files and
// dumped into the test output only when the test fails, so a red CI run
// explains itself. The harness needs root (sshd must switch users) and
// /usr/sbin/sshd; without them it skips loudly, and .ci/run provides both.
//
// The harness holds no package-level state: a test package builds the
// binary once through a Builder created in its TestMain. A typical test:
//
//	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
//		Binary: builder.BuildGatehouse(t),
//		Roles:  rolesYAML,
//		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
//	})
//	bob := e2e.NewUser(t, gh, "bob", time.Hour)
//	r := bob.SSH("ubuntu@web-1", "id -un") // ssh -F cfg -J bob@127.0.0.1:PORT ubuntu@web-1 id -un
//	if r.ExitCode != 0 || r.Stdout != "ubuntu\n" { t.Fatal(r) }
package e2e
