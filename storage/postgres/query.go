package postgres

import (
	"fmt"
	"strings"
)

// where accumulates the optional conditions of a filtered list query with
// numbered placeholders, so every filter value travels as a bind parameter
// and never as SQL text.
type where struct {
	conds []string
	args  []any
}

// add appends cond, in which every %[1]d becomes the placeholder number of v.
func (w *where) add(cond string, v any) {
	w.args = append(w.args, v)
	w.conds = append(w.conds, fmt.Sprintf(cond, len(w.args)))
}

// sql renders " WHERE a AND b", or "" when there are no conditions.
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// limit renders " LIMIT n" as a placeholder, or "" for n <= 0 (no limit).
func (w *where) limit(n int) string {
	if n <= 0 {
		return ""
	}
	w.args = append(w.args, n)
	return fmt.Sprintf(" LIMIT $%d", len(w.args))
}
