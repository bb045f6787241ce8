package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/gatehouse-dev/gatehouse/apiclient"
	"github.com/gatehouse-dev/gatehouse/plugins/jira"
)

// runPluginJira runs the Jira plugin: `gatehouse plugin jira --config jira.yaml`.
func runPluginJira(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("plugin jira", stderr)
	cfgPath := fs.String("config", "./jira.yaml", "path to jira.yaml")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, "no arguments besides --config"); err != nil {
		return err
	}
	cfg, err := jira.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	api, err := apiclient.New(cfg.Gatehouse.URL, apiclient.WithToken(cfg.Gatehouse.Token))
	if err != nil {
		return err
	}
	log := newLogger("text", stderr, slog.LevelInfo)
	p, err := jira.New(cfg, api, jira.NewClient(cfg.Jira.URL, cfg.Jira.Email, cfg.Jira.APIToken), log)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
