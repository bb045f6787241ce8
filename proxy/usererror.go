package proxy

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// UserError is how the proxy tells a user that it refused or ended
// something. Line is the one line they are shown, exactly (it starts
// "gatehouse: " and is terminal-safe); Cause, when set, is what lay
// underneath, for the log and errors.Is, and is never shown. A session is
// ended by cancelling its connection's context with a UserError as the
// cause (liveConn.terminate); whoever owns a channel delivers the line.
type UserError struct {
	Line  string
	Cause error
}

func (e *UserError) Error() string {
	if e.Cause == nil {
		return e.Line
	}
	return e.Line + ": " + e.Cause.Error()
}

func (e *UserError) Unwrap() error { return e.Cause }

// userErrorf is a UserError without a cause; the "gatehouse: " prefix is
// added here.
func userErrorf(format string, args ...any) *UserError {
	return &UserError{Line: "gatehouse: " + fmt.Sprintf(format, args...)}
}

// asUserError is err as the user is told it: its own UserError if it
// carries one, else err's text as the line, with err as the cause.
func asUserError(err error) *UserError {
	var ue *UserError
	if errors.As(err, &ue) {
		return ue
	}
	return &UserError{Line: "gatehouse: " + err.Error(), Cause: err}
}

// rejectChannel refuses a channel the client asked to open, with why's
// line as the message (OpenSSH shows it to the user).
func rejectChannel(nc ssh.NewChannel, reason ssh.RejectionReason, why *UserError) {
	_ = nc.Reject(reason, why.Line)
}
