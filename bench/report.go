package bench

import (
	"fmt"
	"math"
	"strings"
)

// Table is one Markdown table of a report section.
type Table struct {
	Header []string
	Rows   [][]string
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Markdown renders the table.
func (t *Table) Markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(t.Header)) + "\n")
	for _, r := range t.Rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// Section is one case's part of BENCHMARKS.md.
type Section struct {
	Title string
	Text  string // Markdown: method, tables, notes
}

func f1(x float64) string { return fmtNum(x, 1) }
func f2(x float64) string { return fmtNum(x, 2) }

func fmtNum(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

// ratio formats a/b as "1.23×".
func ratio(a, b float64) string {
	r := Ratio(a, b)
	if math.IsNaN(r) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", r)
}
