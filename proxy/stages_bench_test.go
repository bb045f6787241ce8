package proxy

import (
	"bytes"
	"testing"
)

// nopRecorder is a recording that keeps nothing, so that the benchmark
// measures the stages, not the encoder.
type nopRecorder struct{}

func (nopRecorder) Output([]byte)   {}
func (nopRecorder) Input([]byte)    {}
func (nopRecorder) Marker(string)   {}
func (nopRecorder) Resize(int, int) {}
func (nopRecorder) Close() error    { return nil }
func (nopRecorder) Err() error      { return nil }

// stageChunk is one relay read of log text or of binary output.
func stageChunk(kind string) []byte {
	if kind == "text" {
		line := []byte("2026-11-25T05:00:00Z INFO request served status=200\n")
		return bytes.Repeat(line, relayBufSize/len(line)+1)[:relayBufSize]
	}
	p := make([]byte, relayBufSize)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

// BenchmarkSessionStages is what the relay's stdout goroutine spends on
// the stages per chunk of an exec without a pty, recorded: text goes to
// the cast and the watchers, binary output is counted and hashed.
//
//	go test -run '^$' -bench SessionStages ./proxy/
func BenchmarkSessionStages(b *testing.B) {
	for _, kind := range []string{"text", "binary"} {
		b.Run(kind, func(b *testing.B) {
			live := &liveChannel{id: "s", watch: newBroadcaster()}
			t := newSessionTap(nil, nil, nil, live)
			t.stages.live = newLiveStage(live.watch, false)
			t.stages.cast = newCastStage(nopRecorder{})
			s := t.stages.compose(kindExec, false)
			t.streams.Store(&s)
			p := stageChunk(kind)
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				t.output(p)
			}
			if bin := t.stages.binOut.binary(); bin != nil {
				_ = bin.sum()
			}
		})
	}
}
