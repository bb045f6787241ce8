package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gatehouse-dev/gatehouse/client"
	"github.com/gatehouse-dev/gatehouse/identity/cli"
	"github.com/gatehouse-dev/gatehouse/identity/devidp"
)

func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("login", stderr)
	proxy := fs.String("proxy", "", "the bastion's web URL, e.g. https://bastion.example.com")
	home := fs.String("home", defaultHome(), "where to keep the key and certificate")
	headless := fs.Bool("headless", false, "print the login URL instead of opening a browser")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *proxy == "" {
		return usageError{"--proxy URL is required"}
	}
	return cli.Login(ctx, *proxy, cli.CLIOptions{Home: *home, Headless: *headless, Stdout: stdout})
}

func runLogout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("logout", stderr)
	proxy := fs.String("proxy", "", "the bastion's web URL (default: the one you logged in to)")
	home := fs.String("home", defaultHome(), "where the key and certificate are")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	url := *proxy
	if url == "" {
		p, err := client.LoadProfile(*home)
		if err != nil {
			return err
		}
		url = p.Proxy
	}
	if err := cli.Logout(ctx, url, *home); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "logged out of %s: the certificate is revoked and the key, certificate and login record are deleted from %s\n", url, *home)
	return nil
}

func runDevIDP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dev-idp", stderr)
	var o devidp.Options
	o.Register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("dev-idp takes no arguments, got %q", pos)}
	}
	err = devidp.Main(ctx, o, stdout, stderr)
	if errors.Is(err, devidp.ErrRequired) {
		fs.Usage()
		return shownUsageError{err.Error()}
	}
	return err
}
