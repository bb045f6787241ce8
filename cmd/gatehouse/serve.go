package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/gatehouse-dev/gatehouse/internal/gctune"
	"github.com/gatehouse-dev/gatehouse/server"
)

// gcHeadroom is the garbage the collector may leave before it runs while
// the heap is small (see internal/gctune): about a sixth less CPU per byte
// relayed, and at most this much more memory.
const gcHeadroom = 64 << 20

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	cfgPath := configFlag(fs)
	debug := fs.Bool("debug", false, "verbose logs")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := newLogger(cfg.Logging.Format, os.Stderr, level)
	b, err := server.Build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Connect(ctx); err != nil {
		return err
	}
	go gctune.Run(ctx, gcHeadroom, log)
	return b.Serve(ctx)
}
