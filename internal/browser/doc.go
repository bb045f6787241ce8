// Package browser drives a real headless Chromium from tests through the
// DevTools protocol (chromedp), so web flows (OIDC sign-in, confirm pages,
// the session player) are tested the way a person uses them rather than by
// replaying HTTP requests. Each browser gets a fresh profile directory so
// cookies never leak between tests, and Screenshot keeps evidence of what
// the page looked like in $GATEHOUSE_ARTIFACTS (or the test's temp dir).
package browser
