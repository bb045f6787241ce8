package web

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkHomePage measures one signed-in page load end to end over
// loopback HTTP: session lookup, effective roles from SQLite, policy
// decisions for every node, recent sessions and template rendering.
func BenchmarkHomePage(b *testing.B) {
	benchPage(b, "/")
}

// BenchmarkAPIMe is the same work answered as JSON.
func BenchmarkAPIMe(b *testing.B) { benchPage(b, "/api/me") }

func benchPage(b *testing.B, path string) {
	e := newEnv(b)
	bob := e.login(b, "bob")
	b.ReportAllocs()
	for b.Loop() {
		res, err := bob.c.Get(bob.base + path)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, res.StatusCode)
		}
	}
}
