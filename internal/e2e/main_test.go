package e2e_test

import (
	"os"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// builder builds the gatehouse binary once for every test in this package.
// It is the one piece of package state TestMain needs to hand to tests.
var builder *e2e.Builder

func TestMain(m *testing.M) {
	builder = e2e.NewBuilder()
	code := m.Run()
	os.Exit(builder.Close(code))
}
