package preauth

import (
	"bytes"
	"testing"
)

func TestBannerScanner(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		done   bool
	}{
		{"openssh", []string{"SSH-2.0-OpenSSH_9.6\r\n"}, true},
		{"one byte at a time", []string{"S", "S", "H", "-", "2", "\r", "\n"}, true},
		{"lines before the version", []string{"hello\r\nworld\nSSH-2.0-x\n"}, true},
		{"no newline yet", []string{"SSH-2.0-OpenSSH_9.6"}, false},
		{"nothing", nil, false},
		{"garbage", []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, false},
		{"prefix too short", []string{"SSH\n"}, false},
		{"prefix elsewhere", []string{"xSSH-2.0\n"}, false},
		{"newline split from its line", []string{"SSH-2.0-x", "\r", "\n", "junk"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b BannerScanner
			for _, c := range tc.chunks {
				b.Feed([]byte(c))
			}
			if b.Done() != tc.done {
				t.Fatalf("done = %v, want %v", b.Done(), tc.done)
			}
			if b.Received() != (len(tc.chunks) > 0) {
				t.Fatalf("received = %v", b.Received())
			}
		})
	}
}

// bannerEnds is the reference: some line (ended by \n) starts with "SSH-".
func bannerEnds(data []byte) bool {
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return false
		}
		if bytes.HasPrefix(data[:i], []byte("SSH-")) {
			return true
		}
		data = data[i+1:]
	}
}

// FuzzBannerScanner: whatever a client sends, and however the reads split
// it, the scanner agrees with the reference.
func FuzzBannerScanner(f *testing.F) {
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"), uint8(1))
	f.Add([]byte("x\nSSH-\n"), uint8(3))
	f.Add([]byte("\x00\xff\nSSH"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		var b BannerScanner
		step := int(split)%7 + 1
		for i := 0; i < len(data); i += step {
			b.Feed(data[i:min(i+step, len(data))])
		}
		if b.Done() != bannerEnds(data) {
			t.Fatalf("%q split by %d: scanner %v, reference %v", data, step, b.Done(), bannerEnds(data))
		}
	})
}
