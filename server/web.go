package server

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/web"
)

// webHandler serves the web UI and API.
func (b *Bastion) webHandler() http.Handler {
	mux := http.NewServeMux()
	b.opsRoutes(mux)
	// The API is always served: bots authenticate with bearer tokens.
	// Pages and browser sessions need sign-in, so they exist only with oidc:.
	if b.Identity != nil {
		b.Identity.Routes(mux)
	}
	opts := web.Options{Identity: b.Identity, Access: b.Access, Policy: b.Policy, Store: b.Store,
		Audit: b.Audit, Config: b.Config, Logger: b.Log, Recordings: b.Recordings}
	if b.Proxy != nil {
		opts.Live = b.Proxy
	}
	if r := b.Remote(); r != nil {
		opts.Remote = r
	}
	h, err := web.New(opts)
	if err != nil {
		b.Log.Error("web UI and API disabled", "err", err)
	} else {
		mux.Handle("/", h)
	}
	return mux
}
