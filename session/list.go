package session

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// commandWidth is how much of an exec command `sessions ls` shows.
const commandWidth = 30

// ListWriter prints the session index for `gatehouse sessions ls`: an
// aligned table, or one JSON object per line. The command, login and user
// come from clients (`ssh -J … node $'\e]52;c;…\a'` is a valid command),
// so every field goes through termsafe before it reaches the security
// team's terminal; --json keeps the exact values in escaped form.
type ListWriter struct {
	w    io.Writer
	tw   *tabwriter.Writer
	json bool
}

// NewListWriter starts a listing on w; the table's header is written now.
func NewListWriter(w io.Writer, asJSON bool) *ListWriter {
	l := &ListWriter{w: w, json: asJSON}
	if !asJSON {
		l.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(l.tw, "ID\tUSER\tLOGIN\tNODE\tKIND\tSTART\tEND\tSTATUS\tEXIT")
	}
	return l
}

// Write adds one session.
func (l *ListWriter) Write(s storage.Session) error {
	if l.json {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("encode session %s: %w", s.ID, err)
		}
		if _, err := l.w.Write(append(termsafe.JSON(b), '\n')); err != nil {
			return fmt.Errorf("write session %s: %w", s.ID, err)
		}
		return nil
	}
	end, exit := "-", "-"
	if s.End != nil {
		end = s.End.Local().Format("01-02 15:04:05")
	}
	if s.ExitStatus != nil {
		exit = fmt.Sprint(*s.ExitStatus)
	}
	kind := termsafe.String(s.Kind)
	if s.Command != "" {
		kind += " " + truncate(termsafe.String(s.Command), commandWidth)
	}
	f := termsafe.String
	_, err := fmt.Fprintf(l.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f(s.ID), f(s.User), f(s.Login), f(s.Node), kind,
		s.Start.Local().Format("01-02 15:04:05"), end, f(s.Status), exit)
	return err
}

// Flush writes out the aligned table.
func (l *ListWriter) Flush() error {
	if l.tw == nil {
		return nil
	}
	return l.tw.Flush()
}

// truncate shortens s to at most n runes, marking the cut with "…". It
// cuts between runes, never inside one, so the result stays valid UTF-8.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut, i := 0, 0
	for j := range s {
		if i == n-1 {
			cut = j
			break
		}
		i++
	}
	return s[:cut] + "…"
}
