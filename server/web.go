package server

import (
	"net/http"
)

// webHandler serves the web UI and API.
func (b *Bastion) webHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := b.Store.AuditAnchor(r.Context()); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if b.Identity != nil {
		b.Identity.Routes(mux)
	}
	return mux
}
