package preauth

// BannerScanner watches the first bytes a client sends for the end of its
// SSH version line ("SSH-2.0-..." up to a newline; RFC 4253 4.2). Lines
// before it that do not start with "SSH-" are skipped, as x/crypto skips
// them. The zero value is ready to use; it is not safe for concurrent use.
type BannerScanner struct {
	lineLen  int  // bytes of the current line so far
	notSSH   bool // the current line does not start with "SSH-"
	done     bool
	received bool
}

const bannerPrefix = "SSH-"

// Feed scans p, the next bytes read from the client, and reports whether
// the version line has ended (in p or before).
func (b *BannerScanner) Feed(p []byte) bool {
	if len(p) > 0 {
		b.received = true
	}
	for _, c := range p {
		if b.done {
			break
		}
		if c == '\n' {
			b.done = !b.notSSH && b.lineLen >= len(bannerPrefix)
			b.lineLen, b.notSSH = 0, false
			continue
		}
		if b.lineLen < len(bannerPrefix) && c != bannerPrefix[b.lineLen] {
			b.notSSH = true
		}
		b.lineLen++
	}
	return b.done
}

// Done reports whether the version line has ended.
func (b *BannerScanner) Done() bool { return b.done }

// Received reports whether any byte has been fed.
func (b *BannerScanner) Received() bool { return b.received }
