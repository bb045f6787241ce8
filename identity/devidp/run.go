package devidp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Run serves the provider on listen until ctx is done, then shuts down
// gracefully.
func Run(ctx context.Context, cfg Config, listen string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	cfg.Logger = logger
	p, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen for dev provider on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Warn("Gatehouse development identity provider — not for production", "issuer", p.Issuer(), "listen", ln.Addr().String(), "users", len(cfg.Users))
	select {
	case err := <-errc:
		return fmt.Errorf("serve dev provider: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down dev provider: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve dev provider: %w", err)
	}
	return nil
}

// Main is `gatehouse dev-idp` once its flags are parsed: it runs the
// provider until ctx is done.
func Main(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	cfg, err := o.Config()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	fmt.Fprintf(stdout, "Gatehouse development identity provider — not for production\nissuer: %s\nusers: %s\n", cfg.Issuer, userNames(cfg.Users))
	return Run(ctx, cfg, o.Listen, logger)
}

// ErrRequired is Options.Config's answer when a required flag is missing.
var ErrRequired = errors.New("--users, --client-secret and --redirect are required")

// Options are the command line of `gatehouse dev-idp`. cmd/gatehouse
// parses them, so its help and its unknown-flag errors are those of every
// other command.
type Options struct {
	Users, Listen, Issuer, ClientID, ClientSecret string
	FatIDTokens                                   bool
	Redirects                                     []string
}

// Register defines o's flags, with their defaults, on fs.
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.Users, "users", "", "users `FILE` (YAML, see configs/dev-users.yaml; required)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:5556", "`ADDR` to listen on")
	fs.StringVar(&o.Issuer, "issuer", "", "issuer `URL` (default http://ADDR)")
	fs.StringVar(&o.ClientID, "client-id", "gatehouse", "the relying party's client `ID`")
	fs.StringVar(&o.ClientSecret, "client-secret", "", "the relying party's client `SECRET` (required)")
	fs.BoolVar(&o.FatIDTokens, "fat-id-tokens", false, "put profile, email and groups into the ID token too (default: only in UserInfo, as Okta does)")
	fs.Func("redirect", "allowed redirect `URL`, e.g. http://127.0.0.1:8080/oidc/callback (repeatable; at least one required)", func(s string) error {
		o.Redirects = append(o.Redirects, s)
		return nil
	})
}

// Config checks the required options and loads the users file.
func (o *Options) Config() (Config, error) {
	if o.Users == "" || o.ClientSecret == "" || len(o.Redirects) == 0 {
		return Config{}, ErrRequired
	}
	list, err := LoadUsers(o.Users)
	if err != nil {
		return Config{}, err
	}
	iss := o.Issuer
	if iss == "" {
		iss = "http://" + o.Listen
	}
	return Config{Issuer: iss, Users: list, Clients: []Client{{ID: o.ClientID, Secret: o.ClientSecret, RedirectURIs: o.Redirects, FatIDTokens: o.FatIDTokens}}}, nil
}

func userNames(us []User) string {
	names := make([]string, 0, len(us))
	for _, u := range us {
		names = append(names, u.Username)
	}
	return strings.Join(names, ", ")
}
