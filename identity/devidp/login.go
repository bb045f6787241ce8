package devidp

import (
	"crypto/subtle"
	"html/template"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// loginPage is deliberately plain: field names and the button text are what
// tests and humans look for.
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — Gatehouse development identity provider</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}.warn{background:#fee;border:1px solid #c00;padding:.5em}
label{display:block;margin-top:.8em}input{font-size:1em}</style></head>
<body>
<p class="warn" id="banner">Gatehouse development identity provider — not for production</p>
<h1>Sign in</h1>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<label>Username <input id="username" name="username" autocomplete="username" value="{{.Username}}" autofocus></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<p><button id="submit" type="submit">Sign in</button></p>
</form>
</body></html>
`))

type loginView struct {
	ID, Username, Error string
}

func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("authRequestID")
		if _, err := p.store.AuthRequestByID(r.Context(), id); err != nil {
			http.Error(w, "dev provider: this sign-in request is unknown or expired; start again from the application", http.StatusBadRequest)
			return
		}
		p.renderLogin(w, http.StatusOK, loginView{ID: id})
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, "dev provider: cannot read the sign-in form", http.StatusBadRequest)
			return
		}
		id := r.PostForm.Get("authRequestID")
		username := r.PostForm.Get("username")
		password := r.PostForm.Get("password")
		u, ok := p.store.users[username]
		// Compare against something even for unknown users so response
		// time does not reveal which usernames exist.
		want := "\x00unknown-user"
		if ok {
			want = u.Password
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(password)) != 1 || !ok {
			p.log.Info("dev provider: sign-in refused", "user", username, "reason", "wrong username or password")
			p.renderLogin(w, http.StatusUnauthorized, loginView{ID: id, Username: username, Error: "Wrong username or password."})
			return
		}
		if err := p.store.completeLogin(id, u.Username); err != nil {
			http.Error(w, "dev provider: this sign-in request is unknown or expired; start again from the application", http.StatusBadRequest)
			return
		}
		p.log.Info("dev provider: signed in", "user", u.Username)
		http.Redirect(w, r, op.AuthCallbackURL(p.op)(r.Context(), id), http.StatusFound)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (p *Provider) renderLogin(w http.ResponseWriter, status int, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginPage.Execute(w, v); err != nil {
		p.log.Error("dev provider: render login page", "err", err)
	}
}
