package httpapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// findChromium is the headless browser of the dashboard test: Debian's
// chromium (`.ci/run` installs it). In CI (CI set) a missing browser fails
// the test; a developer's machine without one skips it, loudly.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "no chromium on PATH: the River UI dashboard test needs it (Debian: apt-get install chromium; .ci/run installs it)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	// Loud: go test without -v hides a skipped test's log.
	fmt.Fprintln(os.Stderr, "!!!!!!!! SKIPPED TestDashboardInChromium: "+msg+" !!!!!!!!")
	t.Skip(msg)
	return ""
}

// TestDashboardInChromium loads River UI in a headless Chromium with the
// operator's credentials and checks that its job list shows the tasks the
// test created. It saves a screenshot and prints its path.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a browser and a database")
	}
	chromium := findChromium(t)
	bundle := operatorSetup(t, false, nil)
	ids := bundle.createTasks(t, 3)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// The first call starts the browser, on a context without a timeout
	// (the browser lives as long as it).
	require.NoError(t, chromedp.Do(browserCtx))
	ctx, cancel := context.WithTimeout(browserCtx, 90*time.Second)
	defer cancel()

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(opUser+":"+opPassword))
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(bundle.srv.URL+"/riverui/jobs?state=available"),
		chromedp.WaitVisible("body"),
	))

	// The list renders once the single-page app has fetched it: poll the
	// page until it links each created task's page (River UI links every
	// row to /riverui/jobs/{id}) and shows the tasks' kind.
	var (
		text    string
		links   []string
		missing []string
	)
	for {
		require.NoError(t, chromedp.Do(ctx, chromedp.Sleep(200*time.Millisecond)))
		text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		require.NoError(t, err)
		links, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))`))
		require.NoError(t, err)
		missing = missing[:0]
		for _, id := range ids {
			if !slices.Contains(links, fmt.Sprintf("/riverui/jobs/%d", id)) {
				missing = append(missing, fmt.Sprintf("link to job %d", id))
			}
		}
		if !strings.Contains(text, "sleep") {
			missing = append(missing, "kind sleep")
		}
		if len(missing) == 0 || time.Now().After(deadline(ctx)) {
			break
		}
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := filepath.Join(os.TempDir(), "handoff-screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o750))
	path := filepath.Join(dir, fmt.Sprintf("riverui-jobs-%d.png", time.Now().UnixNano()))
	require.NoError(t, os.WriteFile(path, png, 0o600))
	t.Logf("River UI screenshot: %s", path)
	fmt.Printf("River UI screenshot: %s\n", path)

	require.Empty(t, missing, "the job list lacks these; links %q, page text:\n%s", links, text)
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(time.Minute)
	}
	return d.Add(-5 * time.Second)
}
