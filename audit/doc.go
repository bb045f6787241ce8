// Package audit is Gatehouse's tamper-evident event log. Every security
// decision (logins, sessions, access requests, locks, policy reloads) becomes
// one Event appended to a hash chain kept by a storage.AuditStore; Verify
// walks the chain and names the first event that was edited, removed,
// inserted or moved. Log batches concurrent appends into one store
// transaction (group commit) so the chain stays cheap under load, and copies
// each committed event as a JSON line to an optional sink for log shippers.
//
// # Hash encoding
//
// An outside tool can re-verify a chain with only this description.
// Each event's Hash is SHA-256 over these bytes:
//
//	"gatehouse-audit-v1" 0x00
//	then, for each of the eight components below in this order,
//	its length as a 4-byte big-endian unsigned integer followed by its bytes:
//	 1. seq, in decimal ASCII ("42")
//	 2. time, in UTC, Go RFC3339Nano: "2006-01-02T15:04:05.999999999Z"
//	    (fraction without trailing zeros, omitted when zero)
//	 3. type     4. actor     5. target     6. outcome   (UTF-8 as stored)
//	 7. fields, as canonical JSON: an object with keys sorted bytewise at
//	    every level, no insignificant whitespace, numbers written exactly as
//	    stored, strings escaped as Go's encoding/json does with HTML escaping
//	    off (", \, control characters, U+2028 and U+2029 escaped; all other
//	    UTF-8 literal); no fields is "{}"
//	 8. prev_hash, the raw 32 hash bytes of the previous event (zero bytes
//	    for the first event ever appended)
//
// PrevHash of event n is the Hash of event n-1. When retention prunes the
// oldest events, the store's anchor keeps the sequence number and hash of the
// last pruned event, and verification starts from there.
//
// A hash chain proves order and integrity of what is present, but whoever
// controls the database can rewrite a suffix or cut the tail consistently.
// Two things close that gap: signed checkpoints (SignCheckpoint,
// VerifyCheckpoint; Ed25519 key in a file outside the database), and the
// JSON-line sink, shipped elsewhere as it is written.
//
// # Writing events
//
// events.go is the vocabulary: one Type constant for every event type the
// code writes, and Fields, the field names each type carries, mirrored by
// the README's "Audit log" table (tests read the source and hold the code,
// the vocabulary and the table together). Every
// package writes through Append, which has the one rule for cancellation:
// an event outlives the context of the connection or request it is about,
// bounded by AppendTimeout, and a failure is logged and returned to callers
// that must fail closed.
package audit
