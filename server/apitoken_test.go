package server

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// TestAPITokenCommand: `api-token` prints a token for the connection's
// person that ends with their credential, the API's address and the expiry;
// bad flags exit 2; a locked person gets a one-line refusal.
func TestAPITokenCommand(t *testing.T) {
	b := commandBastion(t)
	ctx := context.Background()
	certEnd := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	var o, e bytes.Buffer
	code := b.cmdAPIToken(ctx, proxy.Identity{User: "alice", LoginID: "l-1", KeyFP: "SHA256:k", Expires: certEnd}, nil, strings.NewReader(""), &o, &e)
	if code != 0 || e.Len() != 0 {
		t.Fatalf("api-token: %d %q", code, e.String())
	}
	lines := strings.Split(strings.TrimSpace(o.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "token: ghusr_") || lines[1] != "url: "+b.Config.Web.PublicURL ||
		lines[2] != "expires: "+certEnd.UTC().Format(time.RFC3339) {
		t.Fatalf("api-token printed %q, want token, url and the certificate's end", lines)
	}
	eff, err := b.Access.Authenticate(ctx, strings.TrimPrefix(lines[0], "token: "))
	if err != nil || eff.User() != "alice" || len(eff.Subject.Roles) == 0 {
		t.Fatalf("the token authenticates as %+v %v, want alice with her roles", eff.Subject, err)
	}

	for _, args := range [][]string{{"--ttl", "forever"}, {"--ttl", "-1m"}, {"extra"}} {
		if r := runCmd(b, "bob", append([]string{"api-token"}, args...)...); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("api-token %v: %d %q, want exit 2 and one line", args, r.code, r.stderr)
		}
	}
	if _, err := b.Access.Lock(ctx, access.Admin(), "bob", "laptop stolen", 0); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(b, "bob", "api-token"); r.code != 1 || r.stderr != "gatehouse: api-token refused: you are locked and may not use the API\n" || r.stdout != "" {
		t.Fatalf("api-token while locked: %+v", r)
	}
}
