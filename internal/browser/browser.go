package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// DefaultTimeout bounds one browser's whole life in a test so a page that
// never loads fails the test instead of hanging it.
const DefaultTimeout = 90 * time.Second

// New starts a headless Chromium with a fresh profile and returns a chromedp
// context bound to its first tab. The browser is closed in t.Cleanup. Tests
// skip when Chromium is not installed.
func New(t testing.TB) context.Context {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		p, lerr := exec.LookPath("chromium")
		if lerr != nil {
			t.Skipf("headless Chromium not available (%s): %v", chromiumPath, err)
		}
		path = p
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 768),
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), DefaultTimeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// Start the browser now so a missing or broken Chromium fails here with
	// a clear message rather than inside the first navigation.
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
		t.Fatalf("start headless Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	return bctx
}

// NewBrowser is New under the name the design notes use.
func NewBrowser(t testing.TB) context.Context { return New(t) }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ArtifactsDir is where screenshots go: $GATEHOUSE_ARTIFACTS/<test name>
// when set (CI keeps it), otherwise a directory inside the test's temp dir.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GATEHOUSE_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, unsafeName.ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create artifacts dir: %v", err)
	}
	return dir
}

// Screenshot saves a full-page PNG named name.png into dir and returns its
// path. Failing to take one is logged, not fatal: it is evidence, not the
// thing under test.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(dir, unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("save screenshot %s: %v", path, err)
		return ""
	}
	return path
}

// viewport is a width pages are drawn at.
type viewport struct {
	name          string
	width, height int64
}

// ScreenshotAtWidths saves a full-page PNG (lossless, so text stays
// readable) named NAME-desktop.png and NAME-phone.png into dir, drawn 1280
// and 390 px wide, and fails the test if the page is wider than the window
// at either: nothing may make the whole page scroll sideways (wide tables
// scroll in their own box). The viewport is 1280 px wide again afterwards.
func ScreenshotAtWidths(t testing.TB, ctx context.Context, dir, name string) {
	t.Helper()
	viewports := [...]viewport{{"desktop", 1280, 800}, {"phone", 390, 844}}
	for _, vp := range viewports {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.width, vp.height)); err != nil {
			t.Fatalf("%s: set the %s viewport: %v", name, vp.name, err)
		}
		// Let the page lay itself out again (scripts size terminals on
		// resize) before measuring.
		time.Sleep(300 * time.Millisecond)
		sizes, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if err != nil {
			t.Fatalf("%s: measure the page at %s: %v", name, vp.name, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("screenshot %s: %v", name, err)
		} else if err := os.WriteFile(filepath.Join(dir, unsafeName.ReplaceAllString(name, "_")+"-"+vp.name+".png"), png, 0o644); err != nil {
			t.Logf("save screenshot %s: %v", name, err)
		}
		if len(sizes) == 2 && sizes[0] > sizes[1] {
			url, _ := chromedp.Run(ctx, chromedp.Location())
			t.Errorf("%s (%s) scrolls sideways at %s: %d px of content in a %d px window", name, url, vp.name, sizes[0], sizes[1])
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(viewports[0].width, viewports[0].height)); err != nil {
		t.Fatalf("%s: restore the viewport: %v", name, err)
	}
}
