package server

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/web"
)

// webHandler serves the web UI and API.
func (b *Bastion) webHandler() http.Handler {
	mux := http.NewServeMux()
	b.opsRoutes(mux)
	if b.Identity != nil {
		b.Identity.Routes(mux)
		// The UI needs browser sign-in, so it exists only with oidc:.
		opts := web.Options{Identity: b.Identity, Access: b.Access, Policy: b.Policy, Store: b.Store,
			Audit: b.Audit, Config: b.Config, Logger: b.Log}
		if b.Proxy != nil {
			opts.Live = b.Proxy
		}
		h, err := web.New(opts)
		if err != nil {
			b.Log.Error("web UI disabled", "err", err)
		} else {
			mux.Handle("/", h)
		}
	}
	return mux
}
