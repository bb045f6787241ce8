package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
)

func loadConfig(path string) (*config.Config, error) {
	return config.Load(path)
}

func runCA(_ context.Context, args []string, stdout, stderr io.Writer) error {
	_, args, err := subcommand("ca", args, stderr, "export")
	if err != nil {
		return err
	}
	fs := newFlags("ca export", stderr)
	cfgPath := configFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !oneOf(pos[0], "user", "host") {
		return usageError{"usage: gatehouse ca export user|host --config FILE"}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	auth, err := ca.Load(cfg.DataDir)
	if err != nil {
		return err
	}
	if pos[0] == "user" {
		fmt.Fprintln(stdout, ca.AuthorizedLine(auth.UserCAKey(), "gatehouse-user-ca"))
	} else {
		fmt.Fprintln(stdout, ca.AuthorizedLine(auth.HostCAKey(), "gatehouse-host-ca"))
	}
	return nil
}

func runCert(_ context.Context, args []string, stdout, stderr io.Writer) error {
	_, args, err := subcommand("cert", args, stderr, "issue")
	if err != nil {
		return err
	}
	fs := newFlags("cert issue", stderr)
	cfgPath := configFlag(fs)
	user := fs.String("user", "", "user name (the certificate principal)")
	pubPath := fs.String("pubkey", "", "public key file to sign")
	ttl := fs.Duration("ttl", time.Hour, "validity")
	out := fs.String("out", "", "write the certificate here (default: next to the key as NAME-cert.pub)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if *user == "" || *pubPath == "" {
		return usageError{"--user and --pubkey are required"}
	}
	if strings.Contains(*user, ":") {
		// "bot:NAME" is the bots' namespace (gatehouse bot add); bots use the API only.
		return usageError{"--user may not contain ':' (bot:NAME names API bots)"}
	}
	if *ttl <= 0 {
		return usageError{"--ttl must be positive"}
	}
	data, err := os.ReadFile(*pubPath)
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return usageError{fmt.Sprintf("%s is not an OpenSSH public key: %v", *pubPath, err)}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	auth, err := ca.Load(cfg.DataDir)
	if err != nil {
		return err
	}
	cert, err := auth.SignUser(ca.UserCert{Key: pub, Principals: []string{*user}, KeyID: "gatehouse admin-issued user=" + *user, TTL: *ttl,
		Extensions: map[string]string{"permit-pty": "", "permit-port-forwarding": "", "permit-agent-forwarding": ""}})
	if err != nil {
		return err
	}
	line := ssh.MarshalAuthorizedKey(cert)
	dest := *out
	if dest == "" {
		dest = strings.TrimSuffix(*pubPath, ".pub") + "-cert.pub"
	}
	if dest == "-" {
		_, err = stdout.Write(line)
		return err
	}
	if err := os.WriteFile(dest, line, 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	fmt.Fprintf(stdout, "certificate for %s valid until %s written to %s\n", *user, time.Now().Add(*ttl).Format(time.RFC3339), filepath.Clean(dest))
	return nil
}
