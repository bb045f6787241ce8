// Package web is Gatehouse's browser UI and its JSON API: who am I and what
// may I reach, asking for and reviewing just-in-time access, listing,
// replaying, watching and terminating sessions, reading and verifying the
// audit log, and locking users.
//
// Every page and endpoint sits behind identity's RequireLogin and decides
// what to show from the viewer's roles at this moment (access.Effective with
// the claims of the web login), asked of the policy in force on each
// request, so a grant that ends or a lock that lands changes the next page
// load without a new sign-in. Refusals name what was refused and why in one
// line and never reveal other users' data; a session id the viewer may not
// see answers exactly like one that does not exist.
//
// Pages are rendered on the server with html/template and work without
// JavaScript; small scripts in static/ add local times with countdowns,
// the live review queue, the asciinema player and the xterm.js live view.
// State changes need the session's CSRF token (a hidden form field, or the
// X-CSRF-Token header from scripts). Every response carries a strict
// Content-Security-Policy with no inline scripts, so an injected string can
// at worst be text. Front-end libraries are vendored into static/vendor by
// `make web-assets` and embedded with go:embed, so the binary builds without
// npm.
package web
