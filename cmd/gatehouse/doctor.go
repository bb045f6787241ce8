package main

import (
	"context"
	"io"

	"github.com/gatehouse-dev/gatehouse/doctor"
)

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("doctor", stderr)
	cfgPath := configFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if !doctor.Run(ctx, *cfgPath, stdout, doctor.Options{}) {
		return exitCode(1)
	}
	return nil
}
