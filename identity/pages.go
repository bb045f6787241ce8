package identity

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pageTmpl renders every identity page. Element ids are stable: tests and
// browser automation rely on them.
//
// The pages use the web UI's stylesheet and icon (served under /static/ by
// package web next to these routes), so signing in looks like the rest of
// the site; the small inline style keeps them readable where no web UI
// serves /static/.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Gatehouse</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<style>body{font-family:system-ui,sans-serif;margin:0}main{max-width:40rem;margin:0 auto;padding:1rem 1.2rem}
dd code{overflow-wrap:anywhere}</style>
<link rel="stylesheet" href="/static/app.css"></head>
<body>
<header class="top"><span class="brand">Gatehouse</span></header>
<main>
<h1 id="title">{{.Title}}</h1>
{{if .As}}<p id="whoami">You are signing in as <strong>{{.As}}</strong>.</p>{{end}}
<p id="message">{{.Message}}</p>
{{with .Confirm}}
<section>
<dl class="facts">
{{range .Facts}}<dt>{{.Name}}</dt><dd><code>{{.Value}}</code></dd>
{{end}}</dl>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button id="confirm" type="submit" name="action" value="confirm" class="good">Confirm</button>
<button id="cancel" type="submit" name="action" value="cancel" class="secondary">Cancel</button>
</form>
</section>
{{end}}
</main>
</body></html>
`))

// humanDuration says d the way a person would: "12 hours", "90 minutes"
// becomes "1 hour 30 minutes", "2 days". Seconds show only under a minute.
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return plural(int64(d/time.Second), "second")
	}
	d = d.Round(time.Minute)
	days, hours, mins := int64(d/(24*time.Hour)), int64(d%(24*time.Hour)/time.Hour), int64(d%time.Hour/time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, plural(days, "day"))
	}
	if hours > 0 {
		parts = append(parts, plural(hours, "hour"))
	}
	if mins > 0 {
		parts = append(parts, plural(mins, "minute"))
	}
	return strings.Join(parts, " ")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
}

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
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, pageView{Title: title, Message: msg, As: as, Confirm: c}); err != nil {
		s.log.Error("identity: render page", "err", err)
	}
}
