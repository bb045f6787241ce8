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

// Main is `gatehouse dev-idp`: it parses args (without the command name),
// runs the provider until ctx is done and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, listen, status := parseFlags(args, stderr)
	if status != 0 {
		return status
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	fmt.Fprintf(stdout, "Gatehouse development identity provider — not for production\nissuer: %s\nusers: %s\n", cfg.Issuer, userNames(cfg.Users))
	if err := Run(ctx, cfg, listen, logger); err != nil {
		fmt.Fprintf(stderr, "gatehouse dev-idp: %v\n", err)
		return 1
	}
	return 0
}

// parseFlags turns the command line into a Config and the listen address;
// a non-zero status means the usage error was already written to stderr.
func parseFlags(args []string, stderr io.Writer) (Config, string, int) {
	fs := flag.NewFlagSet("gatehouse dev-idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := fs.String("users", "", "users `FILE` (YAML, see configs/dev-users.yaml)")
	listen := fs.String("listen", "127.0.0.1:5556", "`ADDR` to listen on")
	issuer := fs.String("issuer", "", "issuer `URL` (default http://ADDR)")
	clientID := fs.String("client-id", "gatehouse", "the relying party's client `ID`")
	secret := fs.String("client-secret", "", "the relying party's client `SECRET` (required)")
	fat := fs.Bool("fat-id-tokens", false, "put profile, email and groups into the ID token too (default: only in UserInfo, as Okta does)")
	var redirects []string
	fs.Func("redirect", "allowed redirect `URL`, e.g. http://127.0.0.1:8080/oidc/callback (repeatable)", func(s string) error {
		redirects = append(redirects, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return Config{}, "", 2
	}
	if *users == "" || *secret == "" || len(redirects) == 0 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "gatehouse dev-idp: --users, --client-secret and --redirect are required")
		fs.Usage()
		return Config{}, "", 2
	}
	list, err := LoadUsers(*users)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse dev-idp: %v\n", err)
		return Config{}, "", 2
	}
	iss := *issuer
	if iss == "" {
		iss = "http://" + *listen
	}
	return Config{Issuer: iss, Users: list, Clients: []Client{{ID: *clientID, Secret: *secret, RedirectURIs: redirects, FatIDTokens: *fat}}}, *listen, 0
}

func userNames(us []User) string {
	names := make([]string, 0, len(us))
	for _, u := range us {
		names = append(names, u.Username)
	}
	return strings.Join(names, ", ")
}
