// Package apiclient is the Go client of Gatehouse's Workflow API (the /api/
// routes of `gatehouse serve`, described by GET /api/openapi.yaml). Plugins
// and the `gatehouse request` command line use it.
//
// A client authenticates with a bot token (WithToken; `gatehouse bot add`
// prints one), a user API token (WithToken too; `ssh bastion api-token`
// prints one, which is how `gatehouse request` acts as its user) or with a
// browser session (WithHTTPClient holding the session
// cookie, plus WithCSRFToken for calls that change state). Refusals come back
// as *Error with the server's one-line message and HTTP status.
//
// Watch follows request events as they happen and never misses one: it
// remembers the id of the last event handed to the callback and, when the
// stream breaks, reconnects with Last-Event-ID until its context ends. A
// plugin that stores that id (Event.ID) across restarts resumes where it
// stopped.
package apiclient
