package notify

import (
	"bytes"
	"context"
	"mime"
	"net/mail"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/mailpit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func TestAddress(t *testing.T) {
	for _, tc := range []struct{ user, domain, want string }{
		{"alice", "example.com", "alice@example.com"},
		{"alice@corp.example", "example.com", "alice@corp.example"},
		{"alice@corp.example", "", "alice@corp.example"},
		{"alice", "", ""},
		{"al\r\nBcc: x@evil.example", "example.com", ""},
		{"a<b>", "example.com", ""},
		{"a,b@example.com", "", ""},
		{"", "example.com", ""},
	} {
		if got := Address(tc.user, tc.domain); got != tc.want {
			t.Errorf("Address(%q, %q) = %q, want %q", tc.user, tc.domain, got, tc.want)
		}
	}
}

func TestEmailRecipients(t *testing.T) {
	e := &emailTarget{domain: "example.com", extra: []string{"sec@example.com"}}
	r := sampleRequest()
	for _, tc := range []struct {
		event string
		want  []string
	}{
		{EventCreated, []string{"alice@example.com", "ann@corp.example", "sec@example.com"}},
		{EventApproved, []string{"bob@example.com"}},
		{EventDenied, []string{"bob@example.com"}},
		{EventExpired, []string{"bob@example.com"}},
		{EventRevoked, []string{"bob@example.com"}},
		{EventCancelled, nil},
	} {
		got := e.recipients(Message{Event: tc.event, Request: r, Reviewers: []string{"alice", "ann@corp.example", "bad\nname"}})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: recipients %q, want %q", tc.event, got, tc.want)
		}
	}
}

// TestEmailHeaderInjection: text a requester chooses (reason, and in
// principle any name) never makes a header of its own; the reason is in
// the body only.
func TestEmailHeaderInjection(t *testing.T) {
	r := sampleRequest()
	r.User = "bob\r\nBcc: victim@evil.example"
	r.Roles = []string{"dba\nX-Injected: 1"}
	r.Reason = "disk full\r\nBcc: evil@evil.example\r\n\r\nfake body"
	m := Message{Event: EventCreated, Request: r, Link: "https://gh.example/requests/abcde12345"}
	raw := buildEmail("gatehouse@example.com", []string{"alice@example.com"}, m, time.Unix(0, 0))
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		k, _, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(line, "\r\n") {
			t.Errorf("malformed header line %q", line)
		}
		switch k {
		case "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted":
		default:
			t.Errorf("unexpected header %q in:\n%s", k, head)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse built message: %v", err)
	}
	if msg.Header.Get("Bcc") != "" || msg.Header.Get("X-Injected") != "" {
		t.Fatalf("header injected: %v", msg.Header)
	}
	if to := msg.Header.Get("To"); to != "alice@example.com" {
		t.Errorf("To = %q", to)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(subj, "abcde12345") || !strings.Contains(subj, "dba") || strings.Contains(subj, "disk full") {
		t.Errorf("subject %q: want request id and roles, never the reason", subj)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(msg.Body)
	for _, want := range []string{"Reason:    disk full", "fake body", "Duration:  2h0m0s", m.Link} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("body lacks %q:\n%s", want, body.String())
		}
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("a bare CR or LF left in the message")
	}
}

// FuzzEmailHeaders: whatever a requester writes, the header block of the
// message is the fixed set of headers.
func FuzzEmailHeaders(f *testing.F) {
	f.Add("bob", "dba", "reason\r\nBcc: x@y")
	f.Fuzz(func(t *testing.T, user, role, reason string) {
		r := sampleRequest()
		r.User, r.Roles, r.Reason = user, []string{role}, reason
		raw := buildEmail("gatehouse@example.com", []string{"a@example.com"}, Message{Event: EventCreated, Request: r}, time.Unix(0, 0))
		head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
		if !ok {
			t.Fatal("no end of headers")
		}
		if n := bytes.Count(head, []byte("\r\n")) + 1; n != 9 {
			t.Fatalf("%d header lines, want 9:\n%q", n, head)
		}
	})
}

func mailpitTarget(t *testing.T, srv *mailpit.Server, starttls string) config.NotifyTarget {
	t.Helper()
	tgt := config.NotifyTarget{Kind: "email", SMTP: srv.SMTPAddr, From: "gatehouse@example.com",
		StartTLS: starttls, ToDomain: "example.com"}
	if srv.CAFile != "" {
		pem, err := os.ReadFile(srv.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		tgt.CAFile, tgt.CAPEM = srv.CAFile, pem
	}
	return tgt
}

// TestEmailThroughMailpitSTARTTLS sends through a real SMTP server that
// insists on STARTTLS, trusting its certificate through ca_file.
func TestEmailThroughMailpitSTARTTLS(t *testing.T) {
	srv := mailpit.Start(t, mailpit.Options{RequireSTARTTLS: true})
	aud := &memAudit{}
	d := New([]config.NotifyTarget{mailpitTarget(t, srv, "required")}, aud, nil, fastOpts())
	r := sampleRequest()
	r.Reason = "disk full on db-1\r\nBcc: evil@evil.example"
	d.Notify(context.Background(), Message{Event: EventCreated, Request: r, Reviewers: []string{"alice", "ann"}, Link: "http://gh.example/requests/" + r.ID})
	r.State = storage.StateApproved
	d.Notify(context.Background(), Message{Event: EventApproved, Request: r, Actor: "alice"})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if evs := aud.events(audit.TypeNotifyFailure); len(evs) != 0 {
		t.Fatalf("delivery failed: %+v", evs)
	}
	created := srv.WaitFor(t, "to the reviewers", func(m mailpit.Message) bool {
		return strings.Contains(m.Subject, "bob requests dba")
	})
	slices.Sort(created.To)
	if !slices.Equal(created.To, []string{"alice@example.com", "ann@example.com"}) || created.From != "gatehouse@example.com" {
		t.Errorf("created mail from %q to %q", created.From, created.To)
	}
	if !strings.Contains(created.Text, "disk full on db-1") || !strings.Contains(created.Text, "http://gh.example/requests/"+r.ID) {
		t.Errorf("created mail body lacks reason or link:\n%s", created.Text)
	}
	if len(created.Headers["Bcc"]) != 0 {
		t.Errorf("mailpit saw an injected Bcc header: %v", created.Headers)
	}
	approved := srv.WaitFor(t, "to the requester", func(m mailpit.Message) bool {
		return strings.Contains(m.Subject, "approved")
	})
	if !slices.Equal(approved.To, []string{"bob@example.com"}) || !strings.Contains(approved.Text, "approved by alice") {
		t.Errorf("approved mail to %q:\n%s", approved.To, approved.Text)
	}
}

// TestEmailRefusesUnsafeTLS: with starttls required, a server without
// STARTTLS, or with a certificate nobody vouched for, gets nothing, and the
// failure is audited.
func TestEmailRefusesUnsafeTLS(t *testing.T) {
	plain := mailpit.Start(t, mailpit.Options{})
	tlsSrv := mailpit.Start(t, mailpit.Options{RequireSTARTTLS: true})
	untrusted := mailpitTarget(t, tlsSrv, "required")
	untrusted.CAFile, untrusted.CAPEM = "", nil
	for name, tgt := range map[string]config.NotifyTarget{
		"no STARTTLS offered": mailpitTarget(t, plain, "required"),
		"untrusted cert":      untrusted,
	} {
		t.Run(name, func(t *testing.T) {
			aud := &memAudit{}
			opts := fastOpts()
			opts.Attempts = 2
			d := New([]config.NotifyTarget{tgt}, aud, nil, opts)
			d.Notify(context.Background(), Message{Event: EventApproved, Request: sampleRequest(), Actor: "alice"})
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			evs := aud.events(audit.TypeNotifyFailure)
			if len(evs) != 1 || evs[0].Fields["attempts"] != 2 {
				t.Fatalf("want one audited failure after 2 attempts, got %+v", evs)
			}
			t.Logf("audited: %v", evs[0].Fields["error"])
		})
	}
	msgs, err := plain.Messages(context.Background())
	if err != nil || len(msgs) != 0 {
		t.Fatalf("plain server got %d messages (%v)", len(msgs), err)
	}
	msgs, err = tlsSrv.Messages(context.Background())
	if err != nil || len(msgs) != 0 {
		t.Fatalf("TLS server got %d messages (%v)", len(msgs), err)
	}
}

// TestEmailSMTPAuth: username and password_file log in to a server that
// requires SMTP AUTH (after STARTTLS); a wrong password delivers nothing
// and is audited.
func TestEmailSMTPAuth(t *testing.T) {
	srv := mailpit.Start(t, mailpit.Options{RequireSTARTTLS: true, SMTPUsers: map[string]string{"gatehouse": "right horse"}})
	for _, tc := range []struct {
		password  string
		delivered bool
	}{{"wrong horse", false}, {"right horse", true}} {
		tgt := mailpitTarget(t, srv, "required")
		tgt.Username, tgt.Password = "gatehouse", tc.password
		aud := &memAudit{}
		opts := fastOpts()
		opts.Attempts = 1
		d := New([]config.NotifyTarget{tgt}, aud, nil, opts)
		r := sampleRequest()
		r.ID = "auth" + strings.Fields(tc.password)[0]
		d.Notify(context.Background(), Message{Event: EventDenied, Request: r, Actor: "alice"})
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		fails := aud.events(audit.TypeNotifyFailure)
		if tc.delivered != (len(fails) == 0) {
			t.Fatalf("password %q: audited failures %+v", tc.password, fails)
		}
		if !tc.delivered && !strings.Contains(fails[0].Fields["error"].(string), "AUTH") {
			t.Errorf("failure does not say AUTH failed: %v", fails[0].Fields["error"])
		}
	}
	msgs, err := srv.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "authright") || !slices.Equal(msgs[0].To, []string{"bob@example.com"}) {
		t.Fatalf("want only the mail sent with the right password, got %+v", msgs)
	}
}

// TestEmailLoopbackDefault: on loopback the default is opportunistic
// STARTTLS: a plain relay gets the mail, and one offering STARTTLS gets it
// encrypted (mailpit here refuses anything else).
func TestEmailLoopbackDefault(t *testing.T) {
	for name, opts := range map[string]mailpit.Options{"plain": {}, "starttls": {RequireSTARTTLS: true}} {
		t.Run(name, func(t *testing.T) {
			srv := mailpit.Start(t, opts)
			aud := &memAudit{}
			d := New([]config.NotifyTarget{mailpitTarget(t, srv, "")}, aud, nil, fastOpts())
			d.Notify(context.Background(), Message{Event: EventExpired, Request: sampleRequest()})
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if evs := aud.events(audit.TypeNotifyFailure); len(evs) != 0 {
				t.Fatalf("delivery failed: %+v", evs)
			}
			srv.WaitFor(t, "about the expiry", func(m mailpit.Message) bool { return strings.Contains(m.Subject, "expired") })
		})
	}
}
