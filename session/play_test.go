package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/syncbuf"
)

// fakeClock records every wait Play asks for. In auto mode a wait ends at
// once and moves the clock forward by its length; otherwise it never ends
// and the test drives Play with keys.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	auto   bool
	sleeps []time.Duration
	waited chan time.Duration // receives each wait when not nil
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	ch := make(chan time.Time, 1)
	if c.auto {
		c.now = c.now.Add(d)
		ch <- c.now
	}
	c.mu.Unlock()
	if c.waited != nil {
		c.waited <- d
	}
	return ch
}

// timedCast is a recording with output at the given seconds (exact in
// binary so the expected durations are exact too).
const timedCast = `{"version": 2, "width": 80, "height": 24}` + "\n" +
	`[0.5, "o", "one\r\n"]` + "\n" +
	`[1.0, "o", "\u001b[32mtwo\u001b[0m\u001b]52;c;cHduZWQ=\u0007\r\n"]` + "\n" +
	`[1.0, "r", "100x30"]` + "\n" +
	`[1.0, "i", "typed"]` + "\n" +
	`[61.0, "o", "three\u001b[6n\r\n"]` + "\n" +
	`[63.0, "o", "four\r\n"]` + "\n"

const timedOutput = "one\r\n\x1b[32mtwo\x1b[0m\r\nthree\r\nfour\r\n"

func TestPlayTiming(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       PlayOptions
		headerIdle string
		want       []time.Duration
	}{
		{"real time", PlayOptions{}, "", []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 60 * time.Second, 2 * time.Second}},
		{"double speed", PlayOptions{Speed: 2}, "", []time.Duration{250 * time.Millisecond, 250 * time.Millisecond, 30 * time.Second, time.Second}},
		{"idle limit", PlayOptions{IdleLimit: time.Second}, "", []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second}},
		{"idle limit then speed", PlayOptions{Speed: 4, IdleLimit: time.Second}, "", []time.Duration{125 * time.Millisecond, 125 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}},
		{"header idle limit", PlayOptions{}, `, "idle_time_limit": 1.5`, []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 1500 * time.Millisecond, 1500 * time.Millisecond}},
		{"option beats header", PlayOptions{IdleLimit: 250 * time.Millisecond}, `, "idle_time_limit": 1.5`, []time.Duration{250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}},
		{"nonsense speed means 1", PlayOptions{Speed: -3}, "", []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 60 * time.Second, 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cast := strings.Replace(timedCast, `"height": 24`, `"height": 24`+tc.headerIdle, 1)
			clock := &fakeClock{now: time.Unix(1700000000, 0), auto: true}
			tc.opts.Clock = clock
			var out bytes.Buffer
			if err := Play(context.Background(), strings.NewReader(cast), &out, nil, tc.opts); err != nil {
				t.Fatal(err)
			}
			if out.String() != timedOutput {
				t.Errorf("output %q, want %q", out.String(), timedOutput)
			}
			if !equalDurations(clock.sleeps, tc.want) {
				t.Errorf("sleeps %v, want %v", clock.sleeps, tc.want)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPlayRealClock plays at speed 100 with an idle limit on the real
// clock; only the output is checked, never how long it took.
func TestPlayRealClock(t *testing.T) {
	var out bytes.Buffer
	err := Play(context.Background(), strings.NewReader(timedCast), &out, nil, PlayOptions{Speed: 100, IdleLimit: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != timedOutput {
		t.Errorf("output %q, want %q", out.String(), timedOutput)
	}
}

func TestPlayKeys(t *testing.T) {
	cast := `{"version": 2, "width": 80, "height": 24}` + "\n" +
		`[0, "o", "first "]` + "\n" +
		`[10, "o", "second "]` + "\n" +
		`[20, "o", "third "]` + "\n"
	clock := &fakeClock{now: time.Unix(1700000000, 0), waited: make(chan time.Duration)}
	keysR, keysW := io.Pipe()
	defer keysW.Close()
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Play(context.Background(), strings.NewReader(cast), &out, keysR, PlayOptions{Clock: clock})
	}()

	if d := <-clock.waited; d != 10*time.Second {
		t.Fatalf("first wait %v, want 10s", d)
	}
	if got := out.String(); got != "first " {
		t.Fatalf("output before the wait: %q", got)
	}
	// Pause, step one event while paused, resume: the remaining wait for the
	// third event is its gap after the stepped one, not the whole timeline.
	keysW.Write([]byte{KeyPause, KeyStep, KeyPause})
	if d := <-clock.waited; d != 10*time.Second {
		t.Fatalf("wait after step and resume %v, want 10s", d)
	}
	if got := out.String(); got != "first second " {
		t.Fatalf("output after step: %q", got)
	}
	keysW.Write([]byte{KeyQuit})
	if err := <-done; err != nil {
		t.Fatalf("Play after quit: %v", err)
	}
	if got := out.String(); got != "first second " {
		t.Errorf("output after quit: %q", got)
	}
}

func TestPlayCtrlCAndContext(t *testing.T) {
	cast := `{"version": 2, "width": 80, "height": 24}` + "\n" + `[0, "o", "a"]` + "\n" + `[100, "o", "b"]` + "\n"

	clock := &fakeClock{now: time.Unix(0, 0), waited: make(chan time.Duration, 1)}
	keysR, keysW := io.Pipe()
	defer keysW.Close()
	done := make(chan error, 1)
	go func() {
		done <- Play(context.Background(), strings.NewReader(cast), io.Discard, keysR, PlayOptions{Clock: clock})
	}()
	<-clock.waited
	keysW.Write([]byte{KeyCtrlC})
	if err := <-done; err != nil {
		t.Errorf("Ctrl-C: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	clock = &fakeClock{now: time.Unix(0, 0), waited: make(chan time.Duration, 1)}
	go func() { done <- Play(ctx, strings.NewReader(cast), io.Discard, nil, PlayOptions{Clock: clock}) }()
	<-clock.waited
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestPlayTruncatedAndGarbage(t *testing.T) {
	var out bytes.Buffer
	cast := `{"version": 2, "width": 80, "height": 24}` + "\n" + `[0, "o", "kept"]` + "\n" + `[1, "o", "cu`
	err := Play(context.Background(), strings.NewReader(cast), &out, nil, PlayOptions{Clock: &fakeClock{auto: true}})
	if !errors.Is(err, ErrTruncated) || out.String() != "kept" {
		t.Errorf("truncated: %q, %v", out.String(), err)
	}
	if err := Play(context.Background(), strings.NewReader("garbage"), &out, nil, PlayOptions{}); !errors.Is(err, ErrFormat) {
		t.Errorf("garbage: %v", err)
	}
}

// TestPlayRecorded plays what a Recorder wrote, gzip and all.
func TestPlayRecorded(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, RecorderOptions{})
	r.Output([]byte("\x1b]0;title\x07$ echo hi\r\nhi\r\n"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(dir, testID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if err := Play(context.Background(), rc, &out, nil, PlayOptions{Speed: 1000}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "$ echo hi\r\nhi\r\n" {
		t.Errorf("output %q", out.String())
	}
}
