package server

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCmd(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		pos     []string
		vals    map[string]string
		bools   map[string]bool
		wantErr bool
	}{
		{"reason split by ssh", []string{"dba", "--reason", "INC-42", "disk", "full", "--duration", "30m"},
			[]string{"dba"}, map[string]string{"reason": "INC-42 disk full", "duration": "30m"}, map[string]bool{}, false},
		{"flags before role", []string{"--wait", "--reason=x", "dba,web"},
			nil, map[string]string{"reason": "x dba,web"}, map[string]bool{"wait": true}, false},
		{"equals form", []string{"dba", "--duration=2h", "--reason=outage"},
			[]string{"dba"}, map[string]string{"duration": "2h", "reason": "outage"}, map[string]bool{}, false},
		{"missing value", []string{"dba", "--duration"}, nil, nil, nil, true},
		{"unknown flag", []string{"dba", "--force"}, nil, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseCmd(tt.args, []string{"reason"}, []string{"duration"}, []string{"wait"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !reflect.DeepEqual(c.pos, tt.pos) || !reflect.DeepEqual(c.vals, tt.vals) || !reflect.DeepEqual(c.bools, tt.bools) {
				t.Fatalf("got pos=%q vals=%v bools=%v", c.pos, c.vals, c.bools)
			}
		})
	}
}

func FuzzParseCmd(f *testing.F) {
	f.Add("dba --reason INC-42 disk full --duration 30m --wait")
	f.Add("--reason= --duration")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		c, err := parseCmd(args, []string{"reason"}, []string{"duration"}, []string{"wait"})
		if err != nil {
			return
		}
		// Every positional argument came from the input, unchanged.
		for _, p := range c.pos {
			if !strings.Contains(line, p) {
				t.Fatalf("positional %q not in input %q", p, line)
			}
		}
	})
}
