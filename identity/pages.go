package identity

import (
	"html/template"
	"net/http"
)

// pageTmpl renders every identity page. Element ids are stable: tests and
// browser automation rely on them.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} — Gatehouse</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}dt{font-weight:bold}code{font-size:1.1em}
button{font-size:1em;margin-right:1em}</style></head>
<body>
<h1 id="title">{{.Title}}</h1>
{{if .As}}<p id="whoami">You are signing in as <strong>{{.As}}</strong>.</p>{{end}}
<p id="message">{{.Message}}</p>
{{with .Confirm}}
<dl>
{{range .Facts}}<dt>{{.Name}}</dt><dd><code>{{.Value}}</code></dd>
{{end}}</dl>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button id="confirm" type="submit" name="action" value="confirm">Confirm</button>
<button id="cancel" type="submit" name="action" value="cancel">Cancel</button>
</form>
{{end}}
</body></html>
`))

type fact struct{ Name, Value string }

type confirmForm struct {
	Action string
	CSRF   string
	Facts  []fact
	Hidden []fact
}

type pageView struct {
	Title, Message, As string
	Confirm            *confirmForm
}

// page writes an HTML page. Confirm pages must never be framed: a framed
// Confirm button is a clickjacking target that binds a stranger's key.
func (s *Service) page(w http.ResponseWriter, status int, title, msg string, c *confirmForm) {
	s.pageAs(w, status, title, msg, "", c)
}

func (s *Service) pageAs(w http.ResponseWriter, status int, title, msg, as string, c *confirmForm) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, pageView{Title: title, Message: msg, As: as, Confirm: c}); err != nil {
		s.log.Error("identity: render page", "err", err)
	}
}
