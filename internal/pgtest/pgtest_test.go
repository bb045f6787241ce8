package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartGivesUsableEmptyDatabase(t *testing.T) {
	dsn, stop := Start(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&tables); err != nil {
		t.Fatalf("count tables: %v", err)
	}
	if tables != 0 {
		t.Errorf("new database has %d tables, want 0", tables)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://u:p@h:5/postgres?sslmode=disable", "postgres://u:p@h:5/x?sslmode=disable"},
		{"postgresql://h/", "postgresql://h/x"},
		{"host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=x"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.dsn, "x")
		if err != nil {
			t.Fatalf("withDatabase(%q): %v", tt.dsn, err)
		}
		if got != tt.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
		// Check pgx reads the override the way we rely on.
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Fatalf("parse %q: %v", got, err)
		}
		if cfg.Database != "x" {
			t.Errorf("pgx reads database %q from %q, want x", cfg.Database, got)
		}
	}
}

func TestRestartKeepsData(t *testing.T) {
	c := StartCluster(t)
	if !c.CanRestart() {
		t.Skip("external server")
	}
	dsn := c.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE kept (x int)`); err != nil {
		t.Fatal(err)
	}
	c.Stop(t)
	if err := exec(`SELECT 1`); err == nil {
		t.Fatal("query succeeded while the server was stopped")
	}
	c.Restart(t)
	if err := exec(`SELECT * FROM kept`); err != nil {
		t.Fatalf("table lost across restart: %v", err)
	}
}
