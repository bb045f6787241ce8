package server

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// cmdAPIToken is `ssh bastion api-token [--ttl D]`: a user API token for the
// person this connection authenticated, for their own tools (`gatehouse
// request` asks for one each time it runs). It prints the token, the API's
// base URL and the expiry as `key: value` lines. The token acts as the
// person with their current rights and ends with the certificate or login
// that authenticated here, at logout, at a lock, or after --ttl (1h at most).
func (b *Bastion) cmdAPIToken(ctx context.Context, id proxy.Identity, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c, err := parseCmd(args, nil, []string{"ttl"}, nil)
	if err != nil || len(c.pos) != 0 {
		fmt.Fprintln(stderr, "gatehouse: usage: api-token [--ttl 1h]")
		return 2
	}
	var ttl time.Duration
	if v := c.vals["ttl"]; v != "" {
		if ttl, err = time.ParseDuration(v); err != nil || ttl <= 0 {
			fmt.Fprintf(stderr, "gatehouse: bad --ttl %s (use e.g. 10m; at most %s)\n", termsafe.Quote(v), access.UserTokenMaxTTL)
			return 2
		}
	}
	tok, exp, err := b.Access.IssueUserToken(ctx, access.TokenSubject{
		User: id.User, Claims: id.Claims, LoginID: id.LoginID, KeyFP: id.KeyFP, NotAfter: id.Expires,
	}, ttl)
	if err != nil {
		return b.refused(ctx, stderr, "api-token", err)
	}
	fmt.Fprintf(stdout, "token: %s\nurl: %s\nexpires: %s\n", tok, b.Config.Web.PublicURL, exp.UTC().Format(time.RFC3339))
	return 0
}
