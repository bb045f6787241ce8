package identity

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{12 * time.Hour, "12 hours"},
		{time.Hour, "1 hour"},
		{90 * time.Minute, "1 hour 30 minutes"},
		{time.Minute, "1 minute"},
		{45 * time.Second, "45 seconds"},
		{49 * time.Hour, "2 days 1 hour"},
		{24*time.Hour + 5*time.Minute, "1 day 5 minutes"},
	} {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
