package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

func runBot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("bot", args, stderr, "add", "ls", "rm")
	if err != nil {
		return err
	}
	fs := newFlags("bot "+sub, stderr)
	cfgPath := configFlag(fs)
	var name, roles *string
	var ttl *time.Duration
	switch sub {
	case "add":
		name = fs.String("name", "", "bot name: lowercase letters, digits, dashes (it acts as bot:NAME)")
		roles = fs.String("roles", "", "roles from roles.yaml, comma separated")
		ttl = fs.Duration("ttl", access.DefaultTokenTTL, "how long the token is valid")
	case "rm":
		name = fs.String("name", "", "bot to remove")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if sub == "rm" && *name == "" && len(pos) == 1 {
		*name = pos[0] // gatehouse bot rm NAME
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if name != nil && *name == "" {
		return usageError{"--name is required"}
	}
	if sub == "add" && *roles == "" {
		return usageError{"--roles is required"}
	}
	b, err := openBastion(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer b.Close()
	switch sub {
	case "add":
		bot, tok, err := b.Access.AddBot(ctx, access.Admin(), *name, strings.Split(*roles, ","), *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s with roles %s; the token below is shown only now\n", access.BotUser(bot.Name), strings.Join(bot.Roles, ","))
		fmt.Fprintf(stdout, "expires: %s\n", bot.Created.Add(*ttl).UTC().Format(time.RFC3339))
		fmt.Fprintf(stdout, "token: %s\n", tok)
	case "rm":
		if err := b.Access.RemoveBot(ctx, access.Admin(), *name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s; its tokens no longer work\n", access.BotUser(strings.TrimPrefix(*name, access.BotPrefix)))
	case "ls":
		bots, err := b.Access.ListBots(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLES\tCREATED\tBY")
		for _, bot := range bots {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", access.BotUser(bot.Name), strings.Join(bot.Roles, ","), bot.Created.UTC().Format(time.RFC3339), bot.By)
		}
		return tw.Flush()
	}
	return nil
}
