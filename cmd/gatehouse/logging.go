package main

import (
	"io"
	"log/slog"
)

// newLogger builds the server's logger in the configured format
// (logging.format: text, the default, or json for log shippers).
func newLogger(format string, w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
