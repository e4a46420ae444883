package query_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cairn-io/cairn/query"
)

// Environment of the browser test.
const (
	// BrowserEnv: "require" fails the test when no Chromium is found
	// (.ci/run sets it); "skip" skips it; unset runs it when Chromium is
	// found and skips it otherwise.
	BrowserEnv = "CAIRN_BROWSER_TEST"
	// ChromiumEnv overrides the browser binary (default /usr/bin/chromium,
	// else chromium or chromium-browser on PATH).
	ChromiumEnv = "CAIRN_CHROMIUM"
	// ArtifactsEnv names a directory for the screenshots (default a
	// temporary directory); their paths are logged.
	ArtifactsEnv = "CAIRN_ARTIFACTS_DIR"
	// LineagePNGEnv, when set, is a path where the lineage screenshot is
	// also written (docs/lineage.png for the README).
	LineagePNGEnv = "CAIRN_LINEAGE_PNG"
)

func chromium(t *testing.T) string {
	t.Helper()
	mode := os.Getenv(BrowserEnv)
	if mode == "skip" {
		t.Skipf("%s=skip", BrowserEnv)
	}
	candidates := []string{os.Getenv(ChromiumEnv), "/usr/bin/chromium"}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if mode == "require" {
		t.Fatalf("%s=require but no Chromium found (apt-get install chromium chromium-driver, or set %s)", BrowserEnv, ChromiumEnv)
	}
	t.Skipf("no Chromium found (apt-get install chromium chromium-driver, or set %s)", ChromiumEnv)
	return ""
}

// TestLineagePageInChromium loads the lineage page in headless Chromium
// against a real query service (SQLite, tokens on) with a forked thread,
// clicks through it and checks the DOM at each step.
func TestLineagePageInChromium(t *testing.T) {
	bin := chromium(t)
	f := newLineageFixture(t)
	toks, err := query.ParseTokens("ops " + opsSecret + " *")
	if err != nil {
		t.Fatal(err)
	}
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Tokens: toks, WaitTimeout: 100 * time.Millisecond, Logger: quietLogger()}))
	artifacts := os.Getenv(ArtifactsEnv)
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.WindowSize(1500, 900))
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// Start the browser on a context without a deadline (its life), then
	// bound each step.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	texts := func(css string) []string {
		return eval(`[...document.querySelectorAll(` + jsString(css) + `)].map(e => e.textContent.trim())`)
	}
	attrs := func(css, attr string) []string {
		return eval(`[...document.querySelectorAll(` + jsString(css) + `)].map(e => e.getAttribute(` + jsString(attr) + `))`)
	}
	screenshot := func(name string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(artifacts, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
		return png
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	// The API needs a token: the page asks for one.
	step("open the page", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(css("#token-form")))
	step("give the token", chromedp.SendKeys(css("#token"), opsSecret), chromedp.Click(css("#token-form button")),
		chromedp.WaitVisible(css(`#threads button[data-thread="incident-a"]`)))
	if got := attrs("#threads button", "data-thread"); !slices.Equal(got, []string{"other-c", "incident-b", "incident-a"}) {
		t.Errorf("thread picker: got %v", got)
	}

	// The tree of incident-a: four checkpoints in the root namespace, a2
	// with two children (a fork), the newest highlighted, and the forks
	// other threads made from it.
	step("pick incident-a", chromedp.Click(css(`#threads button[data-thread="incident-a"]`)),
		chromedp.WaitVisible(css(`#graph .node[data-id="a3b"]`)))
	if got := attrs("#graph .node", "data-id"); !slices.Equal(got, []string{"a1", "a2", "a3", "a3b"}) {
		t.Errorf("tree nodes: got %v", got)
	}
	if got := attrs("#graph .node.newest", "data-id"); !slices.Equal(got, []string{"a3b"}) {
		t.Errorf("newest node: got %v, want [a3b]", got)
	}
	if got := texts("#graph .fork-link text"); !slices.Equal(got, []string{"→ incident-b @ b1", "→ other-c @ c1"}) {
		t.Errorf("forks into other threads: got %v", got)
	}
	if got := len(eval(`[...document.querySelectorAll('#graph path.edge')].map(e => e.getAttribute('d'))`)); got != 3 {
		t.Errorf("parent edges: got %d, want 3 (a1-a2, a2-a3, a2-a3b)", got)
	}
	if got := texts("#tree-info"); len(got) != 1 || !strings.Contains(got[0], "4 checkpoints · 1 fork") {
		t.Errorf("tree info: got %v", got)
	}

	// A checkpoint: its messages by role and its pending writes.
	step("click a3", chromedp.Click(css(`#graph .node[data-id="a3"] circle`)), chromedp.WaitVisible(css("#messages .message")))
	if got := attrs("#messages .message", "data-role"); !slices.Equal(got, []string{"system", "user", "assistant", "user", "assistant"}) {
		t.Errorf("messages by role: got %v", got)
	}
	if got := texts("#messages .message .content"); len(got) != 5 || got[4] != "rolled back the deploy" {
		t.Errorf("message contents: got %v", got)
	}
	if got := texts("#writes tr.write td"); len(got) != 4 || got[0] != "status-page-update" || got[2] != "status" || got[3] != `"we are investigating"` {
		t.Errorf("pending writes: got %v", got)
	}
	if got := attrs("#graph .node.selected", "data-id"); !slices.Equal(got, []string{"a3"}) {
		t.Errorf("selected node: got %v", got)
	}
	png := screenshot("lineage.png")
	if path := os.Getenv(LineagePNGEnv); path != "" {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("lineage screenshot also written to %s", path)
	}

	// Two checkpoints: pick a1, compare, pick a3.
	step("diff a1 → a3", chromedp.Click(css(`#graph .node[data-id="a1"] circle`)), chromedp.WaitVisible(css("#compare")),
		chromedp.Click(css("#compare")), chromedp.Click(css(`#graph .node[data-id="a3"] circle`)),
		chromedp.WaitVisible(css("#messages-added")))
	if got := attrs("#messages-added .message", "data-role"); !slices.Equal(got, []string{"assistant", "user", "assistant"}) {
		t.Errorf("messages added a1 → a3: got %v", got)
	}
	if got := texts("#changes tr.change td:nth-child(2)"); !slices.Equal(got, []string{"/messages/2", "/messages/3", "/messages/4", "/iteration"}) {
		t.Errorf("state change paths: got %v", got)
	}
	if got := texts("#metadata-changes tr.change td:nth-child(2)"); !slices.Equal(got, []string{"/turn", "/stop_reason"}) {
		t.Errorf("metadata change paths: got %v", got)
	}
	screenshot("lineage-diff.png")

	// Shift-click diffs against the selection too: a3 → a3b, the fork.
	step("shift-click a3b", chromedp.Click(css(`#graph .node[data-id="a3"] circle`)), chromedp.WaitVisible(css("#messages")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#graph .node[data-id="a3b"]').dispatchEvent(new MouseEvent('click', {bubbles: true, shiftKey: true}))`),
		chromedp.WaitVisible(css("#messages-removed")))
	if got := texts("#detail h3"); !slices.Equal(got, []string{"Diff a3 → a3b"}) {
		t.Errorf("shift-click diff: got %v", got)
	}

	// Across threads: follow the fork into incident-b, whose root names
	// its origin; the origin link leads back.
	step("follow the fork to incident-b", chromedp.Click(css(`#graph .fork-link`)), chromedp.WaitVisible(css(`#graph .node[data-id="b1"]`)),
		chromedp.WaitVisible(css("#messages")))
	if got := texts("#thread-title"); !slices.Equal(got, []string{"incident-b"}) {
		t.Errorf("after following the fork: thread %v", got)
	}
	if got := texts("#graph .origin-link text"); !slices.Equal(got, []string{"⤷ forked from incident-a @ a2"}) {
		t.Errorf("origin link: got %v", got)
	}
	if got := eval(`[location.hash]`); !strings.Contains(got[0], "thread=incident-b") || !strings.Contains(got[0], "checkpoint=b1") {
		t.Errorf("address after following the fork: %v", got)
	}
	step("follow the origin back", chromedp.Click(css(`#graph .origin-link`)), chromedp.WaitVisible(css(`#graph .node.selected[data-id="a2"]`)))

	// Everything came from the service itself: no CDN, works offline.
	for _, u := range eval(`performance.getEntriesByType('resource').map(e => e.name)`) {
		if !strings.HasPrefix(u, srv.URL+"/") {
			t.Errorf("the page loaded %s from elsewhere", u)
		}
	}

	// Read-your-writes: a min_seq in the address goes with every read; the
	// page waits (here it cannot be met: the service has no NATS).
	step("open with min_seq", chromedp.Navigate(srv.URL+"/ui/#thread=incident-a&min_seq=999"),
		chromedp.Poll[chromedp.Void](`document.getElementById('status').textContent.includes('Waiting for the writers')`))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}
