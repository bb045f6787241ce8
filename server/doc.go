// Package server wires a bastion together: it opens the store, the audit
// log, the policy engine, the access-request service, the recorder, the SSH
// proxy and the web server from one Config, runs them, and connects their
// signals (policy reloads and grant changes re-check live sessions). It is
// the one place that knows every package; no other package imports it.
package server
