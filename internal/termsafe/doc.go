// Package termsafe renders text that someone else chose (a user's exec
// command, a request's reason, a login name) so that it can be written to
// another person's terminal without acting on it.
//
// A terminal acts on more than ESC: C0 controls (BEL, CR, BS), DEL, C1
// controls (U+009B is CSI to many terminals, raw byte 0x9b to the rest),
// and it draws bidi overrides and other invisible format characters, which
// reorder or hide what an operator reads. Every such rune, every rune the
// Unicode tables do not call printable, and every byte that is not valid
// UTF-8 is written as a visible Go-style escape (\x1b, \r, \u202e, \xff);
// printable UTF-8, including the ASCII space, is kept. The rule is
// unicode.IsPrint, the one strconv.Quote uses, so Quote(s) equals
// strconv.Quote(s) and the audit listing reads as it always has.
//
// String does not escape the backslash, so text that already holds a
// literal "\x1b" reads the same as an escaped ESC; the listings that must
// be exact quote (Quote) or offer --json, whose strings JSON makes safe.
package termsafe
