package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/notify"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/session/recstore"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Bastion is a running Gatehouse: every component built from one Config.
type Bastion struct {
	Config *config.Config
	Log    *slog.Logger
	CA     *ca.Authority
	Store  storage.Store
	Audit  *audit.Log
	Policy *policy.Engine
	Access *access.Service
	Notify *notify.Dispatcher
	Proxy  *proxy.Server
	// Identity is the OIDC side; nil when no oidc: is configured.
	Identity *identity.Service
	// Metrics is what /metrics serves; its registry is this bastion's own.
	Metrics *metrics.Metrics

	closers []func() error
	// bus carries change notifications between bastions sharing the
	// database; nil for a store that has no other bastions (SQLite).
	bus    changeBus
	origin string // names this process in change notifications
	// bucket is recording.s3 (nil without it); uploader moves finished
	// recordings there from recording.dir.
	bucket   *recstore.S3
	uploader *recstore.Uploader
	remote   *RemoteSessions // nil without a bus
}

// Build constructs a bastion from cfg without starting listeners.
func Build(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Bastion, error) {
	b := &Bastion{Config: cfg, Log: log, origin: newOrigin()}
	b.Metrics = b.newMetrics()
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if cfg.BastionID == "" {
		host, _ := os.Hostname()
		cfg.BastionID = host + "/" + cfg.SSH.Listen
	}
	var err error
	if b.CA, err = ca.Load(cfg.DataDir); err != nil {
		return nil, err
	}
	if b.Store, err = OpenStore(ctx, cfg); err != nil {
		return nil, err
	}
	b.closers = append(b.closers, b.Store.Close)
	b.bus, _ = b.Store.(changeBus)
	if b.bus != nil {
		b.remote = &RemoteSessions{b: b, waiting: map[string][]chan string{}}
	}
	var sink io.Writer
	switch cfg.Audit.Sink {
	case "":
	case "stdout":
		sink = os.Stdout
	default:
		f, err := os.OpenFile(cfg.Audit.Sink, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open audit sink %s: %w", cfg.Audit.Sink, err)
		}
		b.closers = append(b.closers, f.Close)
		sink = f
	}
	if b.bucket, err = OpenRecordingBucket(cfg.Recording); err != nil {
		return nil, err
	}
	if b.bucket != nil {
		b.uploader = recstore.NewUploader(cfg.Recording.Dir, b.bucket, recstore.UploaderOptions{Logger: log})
	}
	b.Audit = audit.New(b.Store, audit.Options{Sink: sink, Logger: log, Observer: b.Metrics})
	b.closers = append([]func() error{b.Audit.Close}, b.closers...)
	if b.Policy, err = policy.NewEngine(cfg.RolesFile, log); err != nil {
		return nil, fmt.Errorf("load roles: %w", err)
	}
	b.Notify = notify.New(cfg.Notify, b.Audit, log, notify.Options{Observer: b.Metrics})
	b.closers = append([]func() error{b.Notify.Close}, b.closers...)
	b.Access = access.New(b.Store, b.Policy, b.Audit, b.Notify, access.Options{
		PendingTTL: cfg.Requests.PendingTTL.D(), PublicURL: cfg.Web.PublicURL, Logger: log,
		OnChange: publishChanges(b.bus, b.origin, log), Claims: latestClaims{b.Store}})
	ok = true
	return b, nil
}

// Connect brings up what talks to the outside world before serving: the
// OIDC provider. Admin CLI commands don't need it.
func (b *Bastion) Connect(ctx context.Context) error {
	if b.Config.OIDC == nil {
		return nil
	}
	svc, err := b.buildIdentity(ctx)
	if err != nil {
		return err
	}
	b.Identity = svc
	return nil
}

// Close releases everything Build opened.
func (b *Bastion) Close() error {
	var errs []error
	for _, c := range b.closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	b.closers = nil
	return errors.Join(errs...)
}

// AdminEffective is the identity of the operator running CLI commands with
// the server's config.
func (b *Bastion) Authorizer() proxy.Authorizer {
	return &authorizer{access: b.Access, now: time.Now}
}

func (b *Bastion) recorder() proxy.RecorderFactory {
	cfg := b.Config
	return func(id string, h proxy.RecordingHeader, onErr func(error)) (proxy.Recorder, string, error) {
		done := b.spooling(id)
		r, err := session.NewRecorder(cfg.Recording.Dir, id, session.Header{
			Width: h.Width, Height: h.Height, Timestamp: h.Start.Unix(), Title: h.Title,
			Env: map[string]string{"TERM": h.Term}, Command: h.Command,
			// Without a pty, input is what the user fed the command, not
			// keystrokes: always on record.
		}, session.RecorderOptions{RecordInput: cfg.Recording.RecordInput || !h.PTY, OnError: onErr, ONLCR: !h.PTY,
			Encrypt: cfg.Recording.Recipients()})
		if err != nil {
			done()
			return nil, "", err
		}
		return &spooledRecorder{Recorder: r, closed: done}, id, nil
	}
}

// rawRecorder opens the raw store (every byte of a session without a pty)
// next to the recordings.
func (b *Bastion) rawRecorder() proxy.RawRecorderFactory {
	dir, max, to := b.Config.Recording.Dir, b.Config.Recording.MaxRawBytes, b.Config.Recording.Recipients()
	return func(id string, onCap func(stored, max int64), onErr func(error)) (proxy.RawRecorder, error) {
		done := b.spooling(id)
		r, err := session.NewRawRecorder(dir, id, session.RawOptions{MaxBytes: max, OnError: onErr,
			OnCap: func(stored int64) { onCap(stored, max) }, Encrypt: to})
		if err != nil {
			done()
			return nil, err
		}
		return rawStore{r: r, closed: done}, nil
	}
}

// spooling notes that a recorder of session id writes to the spool, and
// returns what to call once it is closed.
func (b *Bastion) spooling(id string) (closed func()) {
	if b.uploader == nil {
		return func() {}
	}
	b.uploader.Opened(id)
	return func() { b.uploader.Closed(id) }
}

// rawStore adapts session.RawRecorder to the proxy's interface.
type rawStore struct {
	r      *session.RawRecorder
	closed func()
}

func (s rawStore) Write(st proxy.RawStream, p []byte) { s.r.Write(session.Stream(st), p) }

func (s rawStore) Close() (proxy.RawSummary, error) {
	defer s.closed()
	sum, err := s.r.Close()
	var out proxy.RawSummary
	for i := range out.Streams {
		out.Streams[i].Bytes, out.Streams[i].SHA256 = sum.Streams[i].Bytes, sum.Streams[i].SHA256
	}
	out.Stored, out.Capped = sum.Stored, sum.Capped
	return out, err
}

// Serve runs the SSH and web listeners until ctx ends.
func (b *Bastion) Serve(ctx context.Context) error {
	cfg, log := b.Config, b.Log
	if n, err := b.Store.MarkInterrupted(ctx, cfg.BastionID, time.Now().UTC()); err != nil {
		return fmt.Errorf("mark interrupted sessions: %w", err)
	} else if n > 0 {
		log.Warn("sessions interrupted by the last shutdown", "count", n)
	}
	b.finalizeRecordings(ctx)
	uploads := b.startUploads()
	opt := proxyOptions(cfg)
	opt.CA, opt.Authorizer, opt.Sessions, opt.Audit = b.CA, b.Authorizer(), sessionBinder{b.Store, b.Access, log}, b.Audit
	opt.Recorder, opt.RawRecorder = b.observeRecorders(b.recorder()), b.rawRecorder()
	opt.Commands, opt.KeyLogins, opt.Logger, opt.Observer = b.sshCommands(), b.keyLogins(), log, b.Metrics
	px, err := proxy.New(opt)
	if err != nil {
		return err
	}
	b.Proxy = px
	sshLn, err := net.Listen("tcp", cfg.SSH.Listen)
	if err != nil {
		return fmt.Errorf("listen ssh %s: %w", cfg.SSH.Listen, err)
	}
	webLn, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		sshLn.Close()
		return fmt.Errorf("listen web %s: %w", cfg.Web.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- px.Serve(ctx, sshLn)
	}()

	httpSrv := &http.Server{Handler: b.webHandler(), ReadHeaderTimeout: 10 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := httpSrv.Serve(webLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("web: %w", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = httpSrv.Shutdown(sctx)
	}()
	if cfg.Metrics.Listen != "" {
		if err := b.serveMetrics(ctx, &wg, errc); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}

	// Background loops: grant expiry and request expiry, policy watch,
	// SIGHUP reloads, the periodic safety-net recheck.
	wg.Add(4)
	go func() { defer wg.Done(); b.Access.Run(ctx) }()
	go func() { defer wg.Done(); px.RunRechecks(ctx, time.Second) }()
	go func() {
		defer wg.Done()
		b.Policy.Watch(ctx, func(old, cur *policy.Policy) { b.policyChanged(ctx, cur) })
	}()
	go func() { defer wg.Done(); b.followChanges(ctx) }()
	if b.bus != nil {
		wg.Add(1)
		go func() { defer wg.Done(); b.followOtherBastions(ctx, b.bus) }()
	}
	if uploads != nil {
		wg.Add(1)
		go func() { defer wg.Done(); uploads(ctx) }()
	}
	if cfg.Audit.CheckpointKey != "" {
		wg.Add(1)
		go func() { defer wg.Done(); b.runCheckpoints(ctx) }()
	}
	if maxAge := cfg.Audit.MaxAge.D(); maxAge > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); b.retainAudit(ctx, maxAge, time.Hour) }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := b.Policy.Reload(); err != nil {
					log.Error("policy reload failed; keeping the last good policy", "err", err)
					b.audit(ctx, storage.Event{Type: audit.TypePolicyReload, Actor: "operator", Target: cfg.RolesFile, Outcome: "failure", Fields: map[string]any{"error": err.Error(), "trigger": "SIGHUP"}})
				}
			}
		}
	}()
	log.Info("gatehouse serving", "ssh", sshLn.Addr().String(), "web", webLn.Addr().String(), "bastion", cfg.BastionID)
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	wg.Wait()
	return first
}

func (b *Bastion) keyLogins() proxy.KeyLogins {
	if b.Identity == nil {
		return nil
	}
	return keyLogins{id: b.Identity, store: b.Store}
}

func (b *Bastion) audit(ctx context.Context, ev storage.Event) {
	_ = audit.Append(ctx, b.Audit, b.Log, ev)
}

func (b *Bastion) policyChanged(ctx context.Context, cur *policy.Policy) {
	b.audit(ctx, storage.Event{Type: audit.TypePolicyReload, Actor: "operator", Target: b.Config.RolesFile, Fields: map[string]any{"digest": cur.Digest()}})
	if b.Proxy != nil {
		n := b.Proxy.Recheck(ctx, "", "")
		b.Log.Info("policy reloaded", "digest", cur.Digest(), "sessions_closed", n)
	}
}

// followChanges ends sessions as soon as a grant ends or a lock lands.
func (b *Bastion) followChanges(ctx context.Context) {
	changes, stop := b.Access.Subscribe()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			if b.Proxy != nil {
				b.Proxy.Recheck(ctx, c.User, c.Notice())
			}
		}
	}
}

// finalizeRecordings converts plain casts that a crash of an earlier
// version left behind, so every ended session is at rest compressed (and
// encrypted, with recording.encrypt_to).
func (b *Bastion) finalizeRecordings(ctx context.Context) {
	list, err := b.Store.ListSessions(ctx, storage.SessionFilter{Since: time.Now().Add(-30 * 24 * time.Hour)})
	if err != nil {
		b.Log.Warn("list sessions to finalize", "err", err)
		return
	}
	for _, s := range list {
		if s.Status == "live" || s.Recording == "" || (s.Bastion != "" && s.Bastion != b.Config.BastionID) {
			continue
		}
		if err := session.Finalize(b.Config.Recording.Dir, s.ID, b.Config.Recording.Recipients()...); err != nil {
			b.Log.Warn("finalize recording", "session", s.ID, "err", err)
		}
	}
}

// retainAudit prunes audit events older than maxAge, now and every interval.
func (b *Bastion) retainAudit(ctx context.Context, maxAge, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := b.Audit.Prune(ctx, maxAge)
		if err != nil {
			b.Log.Error("audit retention", "err", err)
		} else if n > 0 {
			b.Log.Info("audit retention pruned events", "count", n, "max_age", maxAge)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
