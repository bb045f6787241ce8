package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// The expected hashes were computed by an independent Python script
// following only the encoding in doc.go (json.dumps with sort_keys=True,
// separators=(",", ":"), ensure_ascii=False; struct.pack(">I", len)), so
// these vectors pin the documented format, not just our implementation.
func TestHashVectors(t *testing.T) {
	prev := sha256.Sum256([]byte("prev"))
	tests := []struct {
		name string
		ev   storage.Event
		want string
	}{
		{
			name: "fields and prev hash",
			ev: storage.Event{
				Seq: 7, Time: time.Date(2025, 1, 2, 3, 4, 5, 500000000, time.UTC),
				Type: "ssh.auth.failure", Actor: "bob", Target: "root@db-1", Outcome: "failure",
				Fields: map[string]any{
					"method": "publickey", "key_fp": "SHA256:x<y>&", "n": 3,
					"nested": map[string]any{"b": []any{1, "two", 2.5}, "a": true}, "who": "ünï",
				},
				PrevHash: prev[:],
			},
			want: "a659a0f884292e0f5af3fada8a53611c6ada5c9da2425d7a42de408b2cbab55d",
		},
		{
			name: "genesis without fields, non-UTC time",
			ev: storage.Event{
				Seq: 1, Time: time.Date(2025, 1, 2, 5, 4, 5, 0, time.FixedZone("EET", 2*3600)),
				Type: "lock", Actor: "sam", Target: "bob", Outcome: "success",
			},
			want: "cde2d8ead455f88c4508970d622362db1f77a4b96083e18d8afff3f8fe596e96",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := audit.Hash(&tc.ev)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			if hex.EncodeToString(got) != tc.want {
				t.Fatalf("Hash = %x, want %s", got, tc.want)
			}
		})
	}
}

// Every component is length-prefixed, so moving bytes between adjacent
// components changes the hash.
func TestHashSeparatesComponents(t *testing.T) {
	a := storage.Event{Seq: 1, Time: t0, Type: "ab", Actor: "c"}
	b := storage.Event{Seq: 1, Time: t0, Type: "a", Actor: "bc"}
	ha, _ := audit.Hash(&a)
	hb, _ := audit.Hash(&b)
	if string(ha) == string(hb) {
		t.Fatal("events differing only in where a byte sits hash the same")
	}
}

func TestHashRejectsUnencodableFields(t *testing.T) {
	ev := storage.Event{Seq: 1, Time: t0, Type: "x", Fields: map[string]any{"ch": make(chan int)}}
	if _, err := audit.Hash(&ev); err == nil {
		t.Fatal("Hash of a channel-valued field succeeded")
	}
}
