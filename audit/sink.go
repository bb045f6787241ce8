package audit

import (
	"fmt"
	"io"
	"os"
)

// OpenSink opens the audit.sink target: "" is no sink (nil), "stdout" is
// standard output, anything else a file appended to (created 0600, since
// audit lines name users and hosts). Close the result when done; closing
// the stdout sink leaves stdout open.
func OpenSink(spec string) (io.WriteCloser, error) {
	switch spec {
	case "":
		return nil, nil
	case "stdout", "-":
		return nopCloser{os.Stdout}, nil
	}
	f, err := os.OpenFile(spec, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit sink %s: %w", spec, err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
