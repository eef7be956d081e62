package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// startLocalFmcapd runs fmcapd on loopback over plain HTTP with no client
// authentication (its local mode: anyone on the host, as with fmslice).
func startLocalFmcapd(t *testing.T, store string) string {
	t.Helper()
	return runFmcapd(t, "http", "--store", store, "--max-range", "0", "--audit-log", filepath.Join(t.TempDir(), "audit.log"))
}

// TestWebPage drives Debian's chromium (headless) through fmcapd's page:
// it loads, a drag across the timeline selects a range, a bad filter shows
// libpcap's error, a good one is applied, and the download equals what
// fmslice writes for the range and filter the page shows.
func TestWebPage(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (make test installs it)")
	}
	need(t, "tcpdump")
	// One capture: its TCP transfer is in the last tenth of its span, so a
	// drag over the second half of the timeline selects packets.
	st := store(t, []string{testdata("ns-http.pcap")})
	base := startLocalFmcapd(t, st)
	dl := t.TempDir()

	// The browser's profile: removed after the browser is gone (its helper
	// processes write to it until then).
	profile, err := os.MkdirTemp("", "fmcap-chromium")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1200, 900), chromedp.UserDataDir(profile))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	// This chromium sends events newer than the protocol tables of
	// chromedp's cdproto know (IPAddressSpace "Loopback"); they are not
	// ones the test uses.
	quiet := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Log(msg)
		}
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(quiet), chromedp.WithLogf(quiet))
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()

	idle := chromedp.WaitNotPresent(`body[data-busy]`, chromedp.ByQuery)
	var from0, to0 string
	var box map[string]float64
	if err := chromedp.Run(ctx,
		browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllow).WithDownloadPath(dl).WithEventsEnabled(true),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`body[data-ready="1"]`, chromedp.ByQuery),
		chromedp.Value("#from", &from0, chromedp.ByID),
		chromedp.Value("#to", &to0, chromedp.ByID),
		chromedp.Evaluate(`(() => { const r = document.getElementById("timeline").getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; })()`, &box),
	); err != nil {
		t.Fatalf("load: %v", err)
	}
	// Drag from the middle to (almost) the end of the timeline.
	y := box["y"] + box["h"]/2
	x1, x2 := box["x"]+box["w"]*0.5, box["x"]+box["w"]*0.999
	var from1, to1, errText string
	if err := chromedp.Run(ctx,
		chromedp.MouseEvent(input.MousePressed, x1, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.MouseMoved, x2, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.MouseReleased, x2, y, chromedp.ButtonLeft),
		chromedp.Sleep(200*time.Millisecond), idle,
		chromedp.Value("#from", &from1, chromedp.ByID),
		chromedp.Value("#to", &to1, chromedp.ByID),
		// A filter libpcap refuses: its message shows.
		chromedp.SendKeys("#filter", "port nonsense\r", chromedp.ByID),
		chromedp.Sleep(200*time.Millisecond), idle,
		chromedp.Text("#error", &errText, chromedp.ByID),
	); err != nil {
		t.Fatalf("drag and filter: %v", err)
	}
	if from1 == from0 || to1 == to0 || from1 >= to1 && len(from1) == len(to1) {
		t.Fatalf("the drag did not select a range: %s..%s, then %s..%s", from0, to0, from1, to1)
	}
	_, cliErr, _ := runCode(t, bin("fmslice"), "--store", st, "--from", from1, "--to", to1, "-q", "port nonsense")
	if want := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(cliErr), "fmslice: ")); !strings.Contains(errText, want) || want == "" {
		t.Errorf("bad filter: the page says %q, fmslice %q", errText, want)
	}
	// A good filter, then the download.
	done := make(chan string, 1)
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			select {
			case done <- e.GUID:
			default:
			}
		}
	})
	var filter, errAfter string
	var png []byte
	if err := chromedp.Run(ctx,
		chromedp.SetValue("#filter", "", chromedp.ByID),
		chromedp.SendKeys("#filter", "tcp\r", chromedp.ByID),
		chromedp.Sleep(200*time.Millisecond), idle,
		chromedp.Text("#error", &errAfter, chromedp.ByID),
		chromedp.Value("#filter", &filter, chromedp.ByID),
		chromedp.CaptureScreenshot(&png),
		chromedp.Click("#get", chromedp.ByID),
	); err != nil {
		t.Fatalf("download: %v", err)
	}
	if strings.TrimSpace(errAfter) != "" {
		t.Fatalf("error after a good filter: %q", errAfter)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the download did not complete")
	}
	os.WriteFile(filepath.Join(t.TempDir(), "page.png"), png, 0o600)
	files, _ := filepath.Glob(filepath.Join(dl, "*"))
	if len(files) != 1 {
		t.Fatalf("downloaded files: %v", files)
	}
	got, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	want := run(t, bin("fmslice"), "--store", st, "--from", from1, "--to", to1, "-q", filter)
	if string(got) != string(want) || len(want) <= 24 {
		t.Fatalf("downloaded %d bytes, fmslice writes %d for %s..%s %q", len(got), len(want), from1, to1, filter)
	}
	t.Logf("page: range %s..%s, filter %q: %d bytes downloaded, equal to fmslice's", from1, to1, filter, len(got))

	// An answer cut after it started (here at max_bytes, which the page's
	// timeline and talkers fit in) is broken off by fmcapd, since the page
	// cannot read the trailer: the page says the download failed and why
	// (the query's outcome, asked by its id), and saves nothing.
	whole := run(t, bin("fmslice"), "--store", st, "--from", "0", "--to", "now", "-q")
	limit := 100000
	if len(whole) <= 2*limit {
		t.Fatalf("the whole capture's answer is %d bytes: too short to be cut at %d", len(whole), limit)
	}
	audit := filepath.Join(t.TempDir(), "audit.log")
	cut := runFmcapd(t, "http", "--store", st, "--max-range", "0", "--max-bytes", fmt.Sprint(limit), "--audit-log", audit)
	var cutErr, cutStatus string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(cut+"/"),
		chromedp.WaitVisible(`body[data-ready="1"]`, chromedp.ByQuery),
		chromedp.Click("#get", chromedp.ByID),
		chromedp.WaitVisible(`//div[@id="error"][contains(., "download failed")]`, chromedp.BySearch),
		chromedp.Text("#error", &cutErr, chromedp.ByID),
		chromedp.Text("#dlstatus", &cutStatus, chromedp.ByID),
	); err != nil {
		t.Fatalf("cut download: %v", err)
	}
	if !strings.Contains(cutErr, "incomplete and was not saved: answer cut at max_bytes (100000)") || strings.TrimSpace(cutStatus) != "" {
		t.Errorf("cut download: the page says %q (status %q)", cutErr, cutStatus)
	}
	if files, _ := filepath.Glob(filepath.Join(dl, "*")); len(files) != 1 {
		t.Errorf("after the cut download, the download directory holds %v (want only the first download)", files)
	}
	var cutLines int
	for _, a := range auditLines(t, audit) {
		if a["endpoint"] == "pcap" && a["complete"] == false && strings.Contains(fmt.Sprint(a["error"]), "max_bytes") {
			cutLines++
		}
	}
	if cutLines != 1 {
		b, _ := os.ReadFile(audit)
		t.Errorf("audit: %d pcap answers cut at max_bytes, want 1:\n%s", cutLines, b)
	}
	t.Logf("page, answer cut at max_bytes: %q", cutErr)
}
