package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// emailTarget sends plain-text mail through one SMTP server.
type emailTarget struct {
	addr     string // host:port
	host     string
	from     string
	username string
	password string
	starttls string // required, opportunistic or off
	roots    *x509.CertPool
	domain   string
	extra    []string // reviewers_to
}

func newEmailTarget(t config.NotifyTarget) (*emailTarget, error) {
	host, _, err := net.SplitHostPort(t.SMTP)
	if err != nil {
		return nil, fmt.Errorf("smtp %q: %w", t.SMTP, err)
	}
	e := &emailTarget{addr: t.SMTP, host: host, from: t.From, username: t.Username, password: t.Password, starttls: t.StartTLS,
		domain: t.ToDomain, extra: slices.Clone(t.ReviewersTo)}
	if e.starttls == "" {
		// A relay on this machine is commonly plain; anything across a
		// network must not see reasons and names in clear.
		e.starttls = "required"
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			e.starttls = "opportunistic"
		}
	}
	if len(t.CAPEM) > 0 {
		e.roots = x509.NewCertPool()
		if !e.roots.AppendCertsFromPEM(t.CAPEM) {
			return nil, fmt.Errorf("smtp ca_file %s: no PEM certificates in it", t.CAFile)
		}
	}
	return e, nil
}

// Address maps a Gatehouse user to an e-mail address: a username that is
// an address already (username_claim: email) is used as is, any other gets
// @domain. It returns "" when there is no usable address.
func Address(user, domain string) string {
	if strings.ContainsAny(user, "\r\n<>,;\" ") {
		return ""
	}
	addr := user
	if !strings.Contains(user, "@") {
		if domain == "" {
			return ""
		}
		addr = user + "@" + domain
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr {
		return ""
	}
	return addr
}

// recipients says who hears of m: the reviewers (and reviewers_to) of a new
// request, the requester of a decision. Cancellations are the requester's
// own doing and go to nobody.
func (e *emailTarget) recipients(m Message) []string {
	var users []string
	var out []string
	switch m.Event {
	case EventCreated:
		users = m.Reviewers
		out = append(out, e.extra...)
	case EventApproved, EventDenied, EventExpired, EventRevoked:
		users = []string{m.Request.User}
	}
	for _, u := range users {
		if a := Address(u, e.domain); a != "" {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// headerSafe removes line breaks from a header value: user-influenced text
// in a header must never start a new header or the body.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

// EmailSubject is the subject line of the mail about m. It names the
// request and its roles; the requester's reason stays in the body.
func EmailSubject(m Message) string {
	r := m.Request
	roles := strings.Join(r.Roles, ",")
	var s string
	switch m.Event {
	case EventCreated:
		s = fmt.Sprintf("%s requests %s", r.User, Asked(r))
	case EventExpired:
		s = fmt.Sprintf("request for %s expired", roles)
	default:
		s = fmt.Sprintf("request for %s %s", roles, m.Event)
	}
	return headerSafe(fmt.Sprintf("[gatehouse] %s (request %s)", s, r.ID))
}

// EmailBody is the plain-text body of the mail about m.
func EmailBody(m Message) string {
	r := m.Request
	var b strings.Builder
	switch m.Event {
	case EventCreated:
		fmt.Fprintf(&b, "%s asks for access and you may review it.\n\n", r.User)
	case EventApproved, EventDenied, EventRevoked:
		fmt.Fprintf(&b, "Your request was %s by %s.\n\n", m.Event, m.Actor)
	case EventExpired:
		b.WriteString("Your request expired without enough reviews.\n\n")
	default:
		fmt.Fprintf(&b, "Request %s: %s.\n\n", r.ID, m.Event)
	}
	fmt.Fprintf(&b, "Request:   %s\nRequester: %s\nRoles:     %s\n", r.ID, r.User, strings.Join(r.Roles, ", "))
	if r.IsResource() {
		fmt.Fprintf(&b, "Only:      login %s on %s\n", r.Login, r.Where())
	}
	if r.ForSession {
		b.WriteString("Ends:      with the first session that uses it\n")
	}
	fmt.Fprintf(&b, "Duration:  %s\nReason:    %s\n", r.Duration, r.Reason)
	if m.Approval != "" && m.Event == EventCreated {
		fmt.Fprintf(&b, "Approval:  %s\n", m.Approval)
	}
	if r.StateReason != "" && m.Event != EventCreated {
		fmt.Fprintf(&b, "Decision:  %s\n", r.StateReason)
	}
	if r.GrantEnd != nil && m.Event == EventApproved {
		fmt.Fprintf(&b, "Until:     %s\n", r.GrantEnd.UTC().Format(time.RFC3339))
	}
	if m.Link != "" {
		fmt.Fprintf(&b, "\n%s\n", m.Link)
	}
	return b.String()
}

// buildEmail renders the whole RFC 5322 message, CRLF line endings.
func buildEmail(from string, to []string, m Message, now time.Time) []byte {
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := "gatehouse"
	if _, d, ok := strings.Cut(from, "@"); ok {
		domain = d
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, headerSafe(v)) }
	hdr("From", from)
	hdr("To", strings.Join(to, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", EmailSubject(m)))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(EmailBody(m), "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes()
}

// send delivers m to its recipients in one SMTP transaction; with none it
// sends nothing.
func (e *emailTarget) send(ctx context.Context, m Message) error {
	to := e.recipients(m)
	if len(to) == 0 {
		return nil
	}
	msg := buildEmail(e.from, to, m, time.Now())
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return fmt.Errorf("dial smtp %s: %w", e.addr, err)
	}
	defer conn.Close()
	// net/smtp has no context: the deadline bounds the whole conversation
	// and a cancel closes the connection under it.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		return fmt.Errorf("smtp greeting from %s: %w", e.addr, err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("smtp EHLO to %s: %w", e.addr, err)
	}
	if e.starttls != "off" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(&tls.Config{ServerName: e.host, RootCAs: e.roots, MinVersion: tls.VersionTLS12}); err != nil {
				return fmt.Errorf("smtp STARTTLS with %s: %w", e.addr, err)
			}
		} else if e.starttls == "required" {
			return fmt.Errorf("smtp %s does not offer STARTTLS (starttls: required)", e.addr)
		}
	}
	if e.username != "" {
		// PlainAuth itself refuses to send the password unencrypted to
		// anything but localhost.
		if err := c.Auth(smtp.PlainAuth("", e.username, e.password, e.host)); err != nil {
			return fmt.Errorf("smtp AUTH as %s at %s: %w", e.username, e.addr, err)
		}
	}
	if err := c.Mail(e.from); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	for _, a := range to {
		if err := c.Rcpt(a); err != nil {
			return fmt.Errorf("smtp RCPT TO %s: %w", a, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp end of message: %w", err)
	}
	// The server has taken the message once DATA was accepted; a failed
	// QUIT changes nothing for the recipients.
	_ = c.Quit()
	return nil
}
