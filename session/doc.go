// Package session keeps what happened in relayed terminal sessions: it
// records a session's terminal stream as an asciicast v2 file (the asciinema
// format, so standard tools can play it), stores recordings under a data
// directory without ever trusting a session id as a path, and reads them back
// for replay, export and search. Recording is written incrementally and
// flushed on a short timer, so a bastion that dies mid-session still leaves a
// playable file up to its last flush; on a clean close the file is gzipped.
//
// Replaying a recording means writing bytes an attacker on the node chose to
// a security reviewer's terminal. The player therefore passes everything
// through Sanitize, which keeps what draws the screen (text, colours, cursor
// movement, erasing) and drops whatever could make the viewer's terminal
// answer, write elsewhere or change state beyond the screen (clipboard and
// title OSC strings, DCS, device status and attribute queries, window ops).
//
// Files names every file of a session's recording, so that whatever copies
// recordings elsewhere (package recstore, to a bucket) needs no suffixes of
// its own; OpenFS and OpenRawFS read from any fs.FS laid out like the
// recordings directory.
//
// The package knows nothing about SSH or the session index: the proxy feeds
// a Recorder and stores metadata in storage.Session itself.
package session
