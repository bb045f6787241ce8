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
		{[]string{"x\r", "\n", "\n", "y\r\r\n\r"}, "x\r\n\r\ny\r\r\n\r"},
		{[]string{"\r", "a\n"}, "\ra\r\n"},
		{[]string{"ab\ncd\r\nef"}, "ab\r\ncd\r\nef"},
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
