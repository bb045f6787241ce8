// Package session keeps what happened in relayed terminal sessions: it
// records a session's terminal stream as an asciicast v2 file (the asciinema
// format, so standard tools can play it), stores recordings under a data
// directory without ever trusting a session id as a path, and reads them back
// for replay, export and search. Recordings are compressed (zstd) as they
// are written, and with recipients encrypted (age) as well, in segments
// ended on a short timer, so a bastion that dies mid-session still leaves a
// readable file up to its last segment and nothing heavy runs after a
// session. Files names every file a recording may have.
//
// Replaying a recording means writing bytes an attacker on the node chose to
// a security reviewer's terminal. The player therefore passes everything
// through Sanitize, which keeps what draws the screen (text, colours, cursor
// movement, erasing) and drops whatever could make the viewer's terminal
// answer, write elsewhere or change state beyond the screen (clipboard and
// title OSC strings, DCS, device status and attribute queries, window ops).
//
// Whatever copies recordings elsewhere (package recstore, to a bucket)
// learns their files from Files and needs no suffixes of its own; OpenFS and
// OpenRawFS read from any fs.FS laid out like the recordings directory.
//
// The package knows nothing about SSH or the session index: the proxy feeds
// a Recorder and stores metadata in storage.Session itself.
package session
