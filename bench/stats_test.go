package bench

import (
	"math"
	"testing"
)

func TestPercentileAndMedian(t *testing.T) {
	tests := []struct {
		name   string
		xs     []float64
		p      float64
		wantP  float64
		wantMd float64
	}{
		{"empty", nil, 90, 0, 0},
		{"one sample", []float64{7}, 99, 7, 7},
		{"odd count, unsorted", []float64{5, 1, 3}, 50, 3, 3},
		{"even count median averages the middle", []float64{4, 1, 3, 2}, 50, 2, 2.5},
		{"p90 of ten is the ninth", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 90, 9, 5.5},
		{"p99 of ten is the largest", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10, 5.5},
		{"p100 is the maximum", []float64{3, 1, 2}, 100, 3, 2},
		{"tiny p is the minimum", []float64{3, 1, 2}, 0.1, 1, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.xs...)
			if got := Percentile(tc.xs, tc.p); got != tc.wantP {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.xs, tc.p, got, tc.wantP)
			}
			if got := Median(tc.xs); got != tc.wantMd {
				t.Errorf("Median(%v) = %v, want %v", tc.xs, got, tc.wantMd)
			}
			for i := range in {
				if in[i] != tc.xs[i] {
					t.Fatalf("input was reordered: %v, was %v", tc.xs, in)
				}
			}
		})
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(3, 2); got != 1.5 {
		t.Errorf("Ratio(3, 2) = %v, want 1.5", got)
	}
	if got := Ratio(1, 0); !math.IsNaN(got) {
		t.Errorf("Ratio(1, 0) = %v, want NaN", got)
	}
}
