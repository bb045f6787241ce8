package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	slackplugin "github.com/gatehouse-dev/gatehouse/plugins/slack"
)

func runPlugin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("plugin", args, stderr, "slack", "jira")
	if err != nil {
		return err
	}
	if sub == "jira" {
		return runPluginJira(ctx, args, stdout, stderr)
	}
	return runPluginSlack(ctx, args, stdout, stderr)
}

// runPluginSlack runs the Slack plugin: `gatehouse plugin slack --config slack.yaml`.
func runPluginSlack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := "slack"
	fs := newFlags("plugin "+sub, stderr)
	cfgPath := fs.String("config", "./slack.yaml", "path to slack.yaml")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	cfg, err := slackplugin.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	p, err := slackplugin.New(cfg, newLogger("text", stderr, slog.LevelInfo))
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
