package server

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/postgres"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// OpenStore opens the configured storage backend.
func OpenStore(ctx context.Context, cfg *config.Config) (storage.Store, error) {
	switch cfg.Storage.Driver {
	case "sqlite":
		s, err := sqlite.Open(ctx, cfg.Storage.DSN)
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", cfg.Storage.DSN, err)
		}
		return s, nil
	case "postgres":
		s, err := postgres.Open(ctx, cfg.Storage.DSN)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown storage driver %q", cfg.Storage.Driver)
}
