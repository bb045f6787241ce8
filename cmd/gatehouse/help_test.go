package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
)

// watchedBuffer collects the output and the flag sets of one command run.
type watchedBuffer struct {
	bytes.Buffer
	sets *[]*flag.FlagSet
}

func (w *watchedBuffer) watchFlagSet(fs *flag.FlagSet) { *w.sets = append(*w.sets, fs) }

// runWatched runs gatehouse with args and returns the exit status, stdout,
// stderr and every flag set the command made.
func runWatched(args []string) (code int, stdout, stderr string, sets []*flag.FlagSet) {
	out, errb := &watchedBuffer{sets: &sets}, &watchedBuffer{sets: &sets}
	code = run(context.Background(), args, out, errb)
	return code, out.String(), errb.String(), sets
}

// TestHelpEveryCommand runs every command and subcommand with --help (exit
// 0, its usage line, every flag it defines and an example on stdout),
// through `gatehouse help`, and with a flag it does not have (exit 2, the
// usage on stderr). The flag package's own "Usage of ..." never shows.
func TestHelpEveryCommand(t *testing.T) {
	hs := helps()
	for name := range commands() {
		if _, ok := hs[name]; !ok {
			t.Errorf("command %q has no help text", name)
		}
	}
	for name, h := range hs {
		args := strings.Fields(name)
		t.Run(name, func(t *testing.T) {
			for _, form := range [][]string{
				append(append([]string{}, args...), "--help"),
				append(append([]string{}, args...), "-h"),
				append([]string{"help"}, args...),
			} {
				code, out, errb, sets := runWatched(form)
				if code != 0 {
					t.Fatalf("gatehouse %s: exit %d, want 0\nstderr: %s", strings.Join(form, " "), code, errb)
				}
				want := []string{"usage: " + h.usage, "Example:\n  " + h.example}
				for _, fs := range sets {
					fs.VisitAll(func(f *flag.Flag) { want = append(want, "  -"+f.Name) })
				}
				for _, w := range want {
					if !strings.Contains(out, w) {
						t.Errorf("gatehouse %s: stdout lacks %q:\n%s", strings.Join(form, " "), w, out)
					}
				}
				if strings.Contains(out+errb, "Usage of ") {
					t.Errorf("gatehouse %s: the flag package's default usage shows:\n%s%s", strings.Join(form, " "), out, errb)
				}
			}
			form := append(append([]string{}, args...), "--no-such-flag")
			code, out, errb, _ := runWatched(form)
			if code != 2 {
				t.Fatalf("gatehouse %s: exit %d, want 2", strings.Join(form, " "), code)
			}
			if !strings.Contains(errb, "usage: ") {
				t.Errorf("gatehouse %s: stderr has no usage:\n%s", strings.Join(form, " "), errb)
			}
			if strings.Contains(out+errb, "Usage of ") {
				t.Errorf("gatehouse %s: the flag package's default usage shows:\n%s%s", strings.Join(form, " "), out, errb)
			}
		})
	}
}

// TestSubcommandHelpDiffers checks that subcommands have their own flags:
// audit verify has no --type, unlock has no --reason or --ttl.
func TestSubcommandHelpDiffers(t *testing.T) {
	tests := []struct {
		args          []string
		want, notWant []string
	}{
		{[]string{"audit", "verify", "--help"}, []string{"usage: gatehouse audit verify", "-config"}, []string{"-type", "-json"}},
		{[]string{"audit", "ls", "--help"}, []string{"usage: gatehouse audit ls", "-type", "-since"}, nil},
		{[]string{"unlock", "--help"}, []string{"usage: gatehouse unlock", "-user", "-by"}, []string{"-reason", "-ttl", "-force"}},
		{[]string{"lock", "--help"}, []string{"-reason", "-ttl", "-force", "-by"}, nil},
		{[]string{"sessions", "export", "--help"}, []string{"SESSION_ID", "-stream"}, []string{"-grep"}},
		{[]string{"ca", "--help"}, []string{"export user|host"}, nil},
		{[]string{"request", "ls", "--help"}, []string{"usage: gatehouse request ls"}, []string{"-roles", "-reason"}},
		{[]string{"--help"}, []string{"usage: gatehouse COMMAND", "audit", "Example:"}, nil},
		{[]string{"help"}, []string{"usage: gatehouse COMMAND"}, nil},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d, want 0 (stderr %s)", tc.args, code, errb.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: help lacks %q:\n%s", tc.args, w, out.String())
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(out.String(), w+" ") {
				t.Errorf("%v: help lists %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}

func TestBadInvocations(t *testing.T) {
	tests := [][]string{
		{},
		{"no-such-command"},
		{"audit"},
		{"audit", "frobnicate"},
		{"audit", "verify", "extra"},
		{"request", "show"},
		{"help", "no-such-command"},
	}
	for _, args := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if errb.Len() == 0 {
			t.Errorf("%v: nothing on stderr", args)
		}
	}
}
