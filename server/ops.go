package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/health"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// newMetrics builds the bastion's metrics; the scrape-time sources read
// the bastion's current state.
func (b *Bastion) newMetrics() *metrics.Metrics {
	nodes := make([]string, 0, len(b.Config.Nodes))
	for _, n := range b.Config.Nodes {
		nodes = append(nodes, n.Name)
	}
	return metrics.New(metrics.Sources{
		Nodes: nodes,
		LiveNodes: func() []string {
			// b.Proxy is set in Serve before any listener starts.
			if b.Proxy == nil {
				return nil
			}
			live := b.Proxy.Live()
			out := make([]string, len(live))
			for i, s := range live {
				out[i] = s.Node
			}
			return out
		},
		Requests: b.openRequests,
	})
}

// openRequests counts the requests still open: pending, and approved with
// a grant that has not ended.
func (b *Bastion) openRequests(ctx context.Context) (map[string]int, error) {
	list, err := b.Store.ListRequests(ctx, storage.RequestFilter{States: []string{storage.StatePending, storage.StateApproved}})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	counts := map[string]int{storage.StatePending: 0, storage.StateApproved: 0}
	for _, r := range list {
		if r.State == storage.StateApproved && r.GrantEnd != nil && !r.GrantEnd.After(now) {
			continue
		}
		counts[r.State]++
	}
	return counts, nil
}

// observedRecorder counts a recording's failures and reports its queue.
type observedRecorder struct {
	proxy.Recorder
	closed func()
}

func (r *observedRecorder) Close() error {
	defer r.closed()
	return r.Recorder.Close()
}

// observeRecorders wraps a recorder factory with the metrics' accounting.
func (b *Bastion) observeRecorders(f proxy.RecorderFactory) proxy.RecorderFactory {
	m := b.Metrics
	return func(id string, h proxy.RecordingHeader, onErr func(error)) (proxy.Recorder, string, error) {
		rec, name, err := f(id, h, func(err error) {
			m.RecordingFailed("write")
			if onErr != nil {
				onErr(err)
			}
		})
		if err != nil {
			m.RecordingFailed("open")
			return nil, "", err
		}
		q, ok := rec.(metrics.QueueReporter)
		if !ok {
			return rec, name, nil
		}
		return &observedRecorder{Recorder: rec, closed: m.RecordingOpened(q)}, name, nil
	}
}

// readyTimeout bounds the readiness checks of one /readyz request.
const readyTimeout = 3 * time.Second

// Ready runs the readiness checks: the store answers, recordings can be
// written, the CAs and a policy are loaded.
func (b *Bastion) Ready(ctx context.Context) []health.Result {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	storeErr := health.Store(ctx, b.Store)
	if storeErr != nil {
		b.Metrics.StoreError("ping")
	}
	// The recording directory is created on first use; an absent one is
	// not a failure, one that cannot be written is.
	recDir := b.Config.Recording.Dir
	recErr := os.MkdirAll(recDir, 0o700)
	if recErr == nil {
		recErr = health.Writable(recDir)
	}
	var caErr, policyErr error
	if b.CA == nil {
		caErr = errors.New("no certificate authority loaded")
	}
	if b.Policy == nil || b.Policy.Current() == nil {
		policyErr = errors.New("no policy loaded")
	}
	results := []health.Result{
		{Name: "store", Err: storeErr},
		{Name: "recording storage", Err: recErr},
		{Name: "ca", Err: caErr},
		{Name: "policy", Err: policyErr},
	}
	if b.bucket != nil {
		// Sessions go on while the bucket is away (they spool), but
		// no bastion can replay what is only there.
		results = append(results, health.Result{Name: "recording bucket", Err: b.bucket.Check(ctx)})
	}
	return results
}

// opsRoutes adds /metrics, /healthz and /readyz to mux.
func (b *Bastion) opsRoutes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", b.Metrics.Handler())
	// Liveness: the process serves HTTP. Nothing else, so that a store
	// outage makes the bastion unready, not restarted.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		results := b.Ready(r.Context())
		status := http.StatusOK
		for _, res := range results {
			if res.Err != nil {
				status = http.StatusServiceUnavailable
				b.Log.Warn("not ready", "check", res.Name, "err", res.Err)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		health.Report(w, results)
	})
}

// opsHandler serves metrics.listen: /metrics and the health checks.
func (b *Bastion) opsHandler() http.Handler {
	mux := http.NewServeMux()
	b.opsRoutes(mux)
	return mux
}

// serveMetrics starts the metrics.listen listener; it stops with ctx.
func (b *Bastion) serveMetrics(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) error {
	addr := b.Config.Metrics.Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen metrics %s: %w", addr, err)
	}
	srv := &http.Server{Handler: b.opsHandler(), ReadHeaderTimeout: 10 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics: %w", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	b.Log.Info("metrics serving", "addr", ln.Addr().String())
	return nil
}
