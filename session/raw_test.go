package session

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
)

func sum(p []byte) string { s := sha256.Sum256(p); return hex.EncodeToString(s[:]) }

// exportAll reads every stream of session id's raw store.
func exportAll(t *testing.T, dir, id string) (streams [numStreams][]byte, capped bool) {
	t.Helper()
	for s := Stream(0); s < numStreams; s++ {
		rr, c, err := OpenRaw(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		cp, trunc, err := ExportStream(&b, rr, s)
		c.Close()
		if err != nil || trunc {
			t.Fatalf("export %s: truncated %v, %v", s, trunc, err)
		}
		streams[s], capped = b.Bytes(), cp
	}
	return streams, capped
}

func TestRawRoundTrip(t *testing.T) {
	dir, id := t.TempDir(), "raw-round-trip"
	r, err := NewRawRecorder(dir, id, RawOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want [numStreams][]byte
	var wg sync.WaitGroup
	for s := Stream(0); s < numStreams; s++ {
		data := make([]byte, 300<<10+int(s)*7777)
		rand.Read(data)
		if s == Stdin {
			data[0] = 0 // binary and text alike
		}
		want[s] = data
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := data; len(p) > 0; {
				n := min(len(p), 1+len(p)%32768)
				r.Write(s, p[:n])
				p = p[n:]
				if len(p)%5 == 0 {
					// Let the writer go idle now and then: the file is
					// then several gzip members.
					r.mu.Lock()
					done, running := r.done, r.running
					r.mu.Unlock()
					if running {
						<-done
					}
				}
			}
		}()
	}
	wg.Wait()
	s, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s.Capped || s.Stored != int64(len(want[0])+len(want[1])+len(want[2])) {
		t.Errorf("summary %+v: want everything stored", s)
	}
	got, capped := exportAll(t, dir, id)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s: exported %d bytes, want the %d written", Stream(i), len(got[i]), len(want[i]))
		}
		if s.Streams[i].Bytes != int64(len(want[i])) || s.Streams[i].SHA256 != sum(want[i]) {
			t.Errorf("%s summary %+v, want %d bytes, sha256 %s", Stream(i), s.Streams[i], len(want[i]), sum(want[i]))
		}
	}
	if capped {
		t.Error("export says capped")
	}
	if _, err := NewRawRecorder(dir, id, RawOptions{}); err == nil {
		t.Error("a second raw store for the same session was created")
	}
}

func TestRawCap(t *testing.T) {
	dir, id := t.TempDir(), "raw-cap-test"
	var caps []int64
	r, err := NewRawRecorder(dir, id, RawOptions{MaxBytes: 100, OnCap: func(n int64) { caps = append(caps, n) }})
	if err != nil {
		t.Fatal(err)
	}
	in, out := bytes.Repeat([]byte("i"), 60), bytes.Repeat([]byte("o"), 60)
	r.Write(Stdin, in)
	r.Write(Stdout, out)
	r.Write(Stdout, out)
	s, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Capped || s.Stored != 100 {
		t.Errorf("summary %+v: want capped at 100 stored bytes", s)
	}
	if s.Streams[Stdin].Bytes != 60 || s.Streams[Stdout].Bytes != 120 || s.Streams[Stdout].SHA256 != sum(append(out, out...)) {
		t.Errorf("summary %+v: counts and hashes go on past the cap", s)
	}
	if len(caps) != 1 || caps[0] != 100 {
		t.Errorf("OnCap calls %v, want one with 100", caps)
	}
	got, capped := exportAll(t, dir, id)
	if !capped || !bytes.Equal(got[Stdin], in) || !bytes.Equal(got[Stdout], out[:40]) {
		t.Errorf("export: capped %v, stdin %q, stdout %q; want capped, all of stdin and 40 bytes of stdout", capped, got[Stdin], got[Stdout])
	}
}

func TestRawTruncated(t *testing.T) {
	dir, id := t.TempDir(), "raw-truncated"
	r, err := NewRawRecorder(dir, id, RawOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Write(Stdout, []byte("first member\n"))
	r.mu.Lock()
	done, running := r.done, r.running
	r.mu.Unlock()
	if running {
		<-done
	}
	big := make([]byte, 200<<10)
	rand.Read(big)
	r.Write(Stdout, big)
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	path, _ := RawPath(dir, id, nil)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A bastion killed halfway through the second member.
	if err := os.WriteFile(path, data[:len(data)-100<<10], 0o600); err != nil {
		t.Fatal(err)
	}
	rr, c, err := OpenRaw(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b bytes.Buffer
	_, trunc, err := ExportStream(&b, rr, Stdout)
	if err != nil || !trunc || !bytes.HasPrefix(b.Bytes(), []byte("first member\n")) {
		t.Fatalf("export of a cut file: truncated %v, err %v, %d bytes; want the first member and truncated", trunc, err, b.Len())
	}
}

func TestRawMissingAndInvalid(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := OpenRaw(dir, "no-such-session"); !errors.Is(err, ErrNoRawRecording) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenRaw of a missing store: %v, want ErrNoRawRecording", err)
	}
	if _, _, err := OpenRaw(dir, "../../etc"); !errors.Is(err, ErrInvalidID) {
		t.Errorf("OpenRaw(../../etc): %v, want ErrInvalidID", err)
	}
	if _, err := ParseStream("stdweird"); err == nil {
		t.Error("ParseStream accepted stdweird")
	}
}

// FuzzRawReader: a damaged or hostile store never panics the reader nor
// makes it allocate past its record bound.
func FuzzRawReader(f *testing.F) {
	f.Add([]byte(rawMagic + "\x01\x00\x03abc\x03\x05\x00"))
	f.Add([]byte(rawMagic + "\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x01x"))
	f.Add([]byte(rawMagic + "\x02\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, plain []byte) {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(plain)
		zw.Close()
		rr, err := NewRawReader(&z)
		if err != nil {
			return
		}
		for i := 0; ; i++ {
			rec, err := rr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrTruncated) && rec.Data != nil {
					t.Fatalf("record with data alongside error %v", err)
				}
				return
			}
			if len(rec.Data) > rawMaxRecord || rec.Stream >= numStreams || (rec.Capped && len(rec.Data) > 0) || rec.Time < 0 {
				t.Fatalf("bad record %+v", rec)
			}
		}
	})
}
