package proxy

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		reqType, cmd string
		pty          bool
		kind, dir    string
	}{
		// What the real clients send.
		{"exec", "scp -t /tmp/", false, kindSCP, "upload"},
		{"exec", "scp -f /etc/hosts", false, kindSCP, "download"},
		{"exec", "scp -r -p -d -v -t /srv/www", false, kindSCP, "upload"},
		{"exec", "scp -t -- -weird", false, kindSCP, "upload"},
		{"exec", "rsync --server -vlogDtpre.iLsfxCIvu . dir/", false, kindRsync, "upload"},
		{"exec", "rsync --server --sender -vlogDtpre.iLsfxCIvu . dir/", false, kindRsync, "download"},
		{"exec", "rsync --server -logDtpre.iLsfxCIvu --delete-during --log-format=%i . /srv/a /srv/b", false, kindRsync, "upload"},
		{"subsystem", "sftp", false, kindSFTP, "both"},
		{"shell", "", false, kindShell, "both"},
		{"exec", "ls -la", false, kindExec, "both"},
		{"exec", "rsync -a a b", false, kindExec, "both"},

		// A pty makes any session a terminal session.
		{"exec", "scp -t /tmp/", true, kindExec, "both"},
		{"exec", "rsync --server -vlogDtpre.iLsfxCIvu . dir/", true, kindExec, "both"},
		{"subsystem", "sftp", true, kindSubsystem, "both"},

		// Evasions: the name of a transfer in front of something else.
		{"exec", "scp 2>/dev/null; bash -i", false, kindExec, "both"},
		{"exec", "scp -t /tmp; bash -i", false, kindExec, "both"},
		{"exec", "scp -t /tmp && bash", false, kindExec, "both"},
		{"exec", "scp -t /tmp || bash", false, kindExec, "both"},
		{"exec", "scp -t /tmp | bash", false, kindExec, "both"},
		{"exec", "scp -t /tmp & bash", false, kindExec, "both"},
		{"exec", "scp -t /tmp\nbash", false, kindExec, "both"},
		{"exec", "scp -t /tmp\tbash", false, kindExec, "both"},
		{"exec", "scp -t $(bash)", false, kindExec, "both"},
		{"exec", "scp -t `bash`", false, kindExec, "both"},
		{"exec", "scp -t /tmp >/dev/null", false, kindExec, "both"},
		{"exec", "scp -t '/tmp'", false, kindExec, "both"},
		{"exec", "scp -t \"/tmp\"", false, kindExec, "both"},
		{"exec", "scp -t /tmp/*", false, kindExec, "both"},
		{"exec", "scp -t /tmp/?", false, kindExec, "both"},
		{"exec", "scp -t /tmp/[a]", false, kindExec, "both"},
		{"exec", "scp -t /tmp/{a,b}", false, kindExec, "both"},
		{"exec", "scp -t ~", false, kindExec, "both"},
		{"exec", "scp -t /tmp #", false, kindExec, "both"},
		{"exec", "scp -t a\\ b", false, kindExec, "both"},
		{"exec", "scp -t /tmp /etc", false, kindExec, "both"}, // two paths
		{"exec", "scp -t", false, kindExec, "both"},           // no path
		{"exec", "scp /tmp", false, kindExec, "both"},         // neither -t nor -f
		{"exec", "scp -t -f /tmp", false, kindExec, "both"},   // both
		{"exec", "scp -S bash -t /tmp", false, kindExec, "both"},
		{"exec", "scp -o ProxyCommand=bash -t /tmp", false, kindExec, "both"},
		{"exec", "scp -t -weird", false, kindExec, "both"}, // a flag, not a path
		{"exec", "scp", false, kindExec, "both"},
		{"exec", "/usr/bin/scp -t /tmp", false, kindExec, "both"},
		{"exec", "env scp -t /tmp", false, kindExec, "both"},
		{"exec", "exec scp -t /tmp", false, kindExec, "both"},
		{"exec", "sh -c scp", false, kindExec, "both"},
		{"exec", "rsync --server; bash", false, kindExec, "both"},
		{"exec", "rsync --server 2>/dev/null; bash -i", false, kindExec, "both"},
		{"exec", "rsync --server -vlogDtpre.iLsfxCIvu . dir/; bash", false, kindExec, "both"},
		{"exec", "rsync --server --daemon .", false, kindExec, "both"},
		{"exec", "rsync --server --daemon --config=/tmp/x.conf . x", false, kindExec, "both"},
		{"exec", "rsync --server -v .", false, kindExec, "both"}, // no path
		{"exec", "rsync --server -v x y", false, kindExec, "both"},
		{"exec", "rsync -a --server . x", false, kindExec, "both"},
		{"exec", "sftp-server", false, kindExec, "both"},
		{"exec", "/usr/lib/openssh/sftp-server", false, kindExec, "both"},
		{"exec", "internal-sftp", false, kindExec, "both"},
		{"subsystem", "SFTP", false, kindSubsystem, "both"},
		{"subsystem", "sftp ", false, kindSubsystem, "both"},
		{"subsystem", "shell", false, kindSubsystem, "both"},
		{"subsystem", "scp -t /tmp", false, kindSubsystem, "both"},
		{"exec", "scp\u00a0-t /tmp", false, kindExec, "both"},
	}
	for _, tt := range tests {
		kind := classify(tt.reqType, tt.cmd, tt.pty)
		if kind != tt.kind {
			t.Errorf("classify(%q, %q, pty=%v) = %q, want %q", tt.reqType, tt.cmd, tt.pty, kind, tt.kind)
			continue
		}
		if d := transferDirection(kind, tt.cmd); d != tt.dir {
			t.Errorf("direction(%q) = %q, want %q", tt.cmd, d, tt.dir)
		}
	}
}

// FuzzClassify: whatever the command line, a line a shell could read as
// more than one plain command is never a transfer, and a pty never is.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"scp -t /tmp", "scp -f -- -x", "rsync --server --sender -e.L . a", "scp 2>/dev/null; bash -i", "scp -t -", "scp - -t"} {
		f.Add("exec", s, false)
	}
	f.Add("subsystem", "sftp", true)
	f.Fuzz(func(t *testing.T, reqType, cmd string, pty bool) {
		kind := classify(reqType, cmd, pty)
		_ = transferDirection(kind, cmd)
		if !isTransfer(kind) {
			return
		}
		if pty {
			t.Fatalf("classify(%q, %q, pty) = %q: a pty session is never a transfer", reqType, cmd, kind)
		}
		if reqType == "subsystem" {
			if cmd != "sftp" {
				t.Fatalf("subsystem %q classed %q", cmd, kind)
			}
			return
		}
		if reqType != "exec" {
			t.Fatalf("%s request classed %q", reqType, kind)
		}
		if i := strings.IndexAny(cmd, ";&|<>()$`\\\"'*?[]{}~#!\t\r\n^"); i >= 0 {
			t.Fatalf("classify(exec, %q) = %q although it holds %q", cmd, kind, cmd[i])
		}
		if f := strings.Fields(cmd); f[0] != kind {
			t.Fatalf("classify(exec, %q) = %q but the program is %q", cmd, kind, f[0])
		}
	})
}
