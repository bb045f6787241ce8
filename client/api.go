package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/apiclient"
)

// APICredential is a user API token the bastion issued over SSH, with the
// web address its API answers on.
type APICredential struct {
	Token   string
	URL     string
	Expires time.Time
}

// APIToken asks the bastion, over SSH as the profile's user (`ssh bastion
// api-token`), for a short-lived user API token. The token acts as that
// user with their current rights; SSH proves who they are, as it does for
// every bastion command.
func APIToken(ctx context.Context, p Profile) (APICredential, error) {
	var out, errb bytes.Buffer
	code, err := Run(ctx, p, []string{"api-token"}, &out, &errb)
	if err != nil {
		return APICredential{}, err
	}
	if code != 0 {
		msg := strings.TrimSpace(errb.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			msg = fmt.Sprintf("exit status %d", code)
		}
		return APICredential{}, fmt.Errorf("get an API token from the bastion: %s", strings.TrimPrefix(msg, "gatehouse: "))
	}
	return parseCredential(out.String())
}

// parseCredential reads api-token's `key: value` lines.
func parseCredential(s string) (APICredential, error) {
	var c APICredential
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		switch k {
		case "token":
			c.Token = v
		case "url":
			c.URL = v
		case "expires":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return c, fmt.Errorf("the bastion's API token answer has a bad expiry %q", v)
			}
			c.Expires = t
		}
	}
	if c.Token == "" || c.URL == "" || c.Expires.IsZero() {
		return c, errors.New("the bastion's API token answer lacks the token, url or expiry (is the bastion older than this gatehouse?)")
	}
	return c, nil
}

// apiSession is the API as the profile's user: a token minted over SSH,
// minted again when it is about to expire (a long --wait outlives one).
type apiSession struct {
	p       Profile
	mint    func(context.Context, Profile) (APICredential, error)
	cred    APICredential
	api     *apiclient.Client
	timeNow func() time.Time
}

// client returns an API client whose token is good for a while yet.
func (s *apiSession) client(ctx context.Context) (*apiclient.Client, error) {
	if s.api != nil && s.timeNow().Add(time.Minute).Before(s.cred.Expires) {
		return s.api, nil
	}
	cred, err := s.mint(ctx, s.p)
	if err != nil {
		return nil, err
	}
	api, err := apiclient.New(cred.URL, apiclient.WithToken(cred.Token))
	if err != nil {
		return nil, fmt.Errorf("the bastion's API address: %w", err)
	}
	s.cred, s.api = cred, api
	return api, nil
}
