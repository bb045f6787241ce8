package proxy

import "testing"

func TestONLCR(t *testing.T) {
	tests := []struct {
		chunks []string
		want   string
	}{
		{[]string{"a\nb\n"}, "a\r\nb\r\n"},
		{[]string{"a\r\nb"}, "a\r\nb"},
		{[]string{"a\r", "\nb\n"}, "a\r\nb\r\n"},
		{[]string{"no newline"}, "no newline"},
		{[]string{"\n\n"}, "\r\n\r\n"},
	}
	for _, tt := range tests {
		var o onlcr
		got := ""
		for _, c := range tt.chunks {
			got += string(o.apply([]byte(c)))
		}
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.chunks, got, tt.want)
		}
	}
}

func TestClassifyAndDirection(t *testing.T) {
	tests := []struct {
		reqType, cmd, kind, dir string
	}{
		{"exec", "scp -t /tmp/", "scp", "upload"},
		{"exec", "scp -f /etc/hosts", "scp", "download"},
		{"exec", "rsync --server -vlogDtpre.iLsfxCIvu . dir/", "rsync", "upload"},
		{"exec", "rsync --server --sender -vlogDtpre.iLsfxCIvu . dir/", "rsync", "download"},
		{"subsystem", "sftp", "sftp", "both"},
		{"exec", "ls -la", "exec", "both"},
		{"exec", "rsync -a a b", "exec", "both"},
	}
	for _, tt := range tests {
		kind := classify(tt.reqType, tt.cmd)
		if kind != tt.kind {
			t.Errorf("classify(%q, %q) = %q, want %q", tt.reqType, tt.cmd, kind, tt.kind)
			continue
		}
		if d := transferDirection(kind, tt.cmd); d != tt.dir {
			t.Errorf("direction(%q) = %q, want %q", tt.cmd, d, tt.dir)
		}
	}
}
