package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fmcap/fmcap/fmcapd"
)

// pki is a CA, fmcapd's certificate, and clients: one of the CA, one of
// another CA, one expired.
type pki struct {
	dir                   string
	caFile                string
	good, other, expired  tls.Certificate
	pool                  *x509.CertPool
	serverCert, serverKey string
	clientCert, clientKey string // the good client's, as files
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	ca, err := fmcapd.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := fmcapd.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	write := func(name string, b []byte) string {
		f := filepath.Join(p.dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.caFile = write("ca.pem", ca.PEM)
	sc, sk, err := ca.Issue("127.0.0.1", []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p.serverCert, p.serverKey = write("server.pem", sc), write("server-key.pem", sk)
	client := func(c *fmcapd.CA, name string, from, to time.Time) tls.Certificate {
		cp, kp, err := c.Issue(name, nil, from, to)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	cp, kp, err := ca.Issue("analyst", nil, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p.clientCert, p.clientKey = write("client.pem", cp), write("client-key.pem", kp)
	if p.good, err = tls.X509KeyPair(cp, kp); err != nil {
		t.Fatal(err)
	}
	p.other = client(other, "intruder", now.Add(-time.Hour), now.Add(time.Hour))
	p.expired = client(ca, "former", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	p.pool = x509.NewCertPool()
	p.pool.AppendCertsFromPEM(ca.PEM)
	return p
}

// client is an HTTPS client trusting the test CA, with cert (nil: none).
func (p *pki) client(cert *tls.Certificate) *http.Client {
	c := &tls.Config{RootCAs: p.pool}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}}
}

// startFmcapd runs fmcapd and returns its base URL and the audit file.
func startFmcapd(t *testing.T, p *pki, args ...string) (base, audit string) {
	t.Helper()
	audit = filepath.Join(t.TempDir(), "audit.log")
	return runFmcapd(t, "https", append([]string{"--tls-cert", p.serverCert, "--tls-key", p.serverKey,
		"--client-ca", p.caFile, "--audit-log", audit}, args...)...), audit
}

// runFmcapd runs fmcapd on a free loopback port with args and returns the
// URL it says it serves, which must have scheme; it is killed when the test
// ends.
func runFmcapd(t *testing.T, scheme string, args ...string) string {
	t.Helper()
	return launchFmcapd(t, scheme, args...).url
}

// fmcapdProc is a running fmcapd: its URL, its process, and its log.
type fmcapdProc struct {
	url  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder // standard error after the "serving" line
	done chan struct{}   // closed when standard error ends
}

// logText is what fmcapd has logged so far.
func (f *fmcapdProc) logText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.log.String()
}

// launchFmcapd is runFmcapd, keeping the process and its log.
func launchFmcapd(t *testing.T, scheme string, args ...string) *fmcapdProc {
	t.Helper()
	cmd := exec.Command(bin("fmcapd"), append([]string{"--listen", "127.0.0.1:0", "--fmslice", bin("fmslice")}, args...)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	f := &fmcapdProc{cmd: cmd, done: make(chan struct{})}
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`url=(` + scheme + `://\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			f.url = m[1]
			go func() {
				defer close(f.done)
				for sc.Scan() {
					f.mu.Lock()
					f.log.WriteString(sc.Text() + "\n")
					f.mu.Unlock()
				}
				io.Copy(io.Discard, stderr) // a line too long to scan must not block fmcapd
			}()
			return f
		}
	}
	t.Fatalf("fmcapd did not start: %v", cmd.Wait())
	return nil
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return resp, b
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

// TestFmcapd: the HTTPS service answers exactly what fmslice does, to the
// clients it should, with the limits and the audit it should.
func TestFmcapd(t *testing.T) {
	need(t, "tcpdump")
	inputs := []string{testdata("ns-http.pcap"), testdata("ns-mix-nano.pcap"), testdata("gopacket-dns.pcap")}
	st := store(t, inputs)
	times := packetTimes(t, inputs[1])
	p := newPKI(t)
	token := "s3cret-token-for-scripts"
	sum := sha256.Sum256([]byte(token))
	base, audit := startFmcapd(t, p, "--store", "main="+st, "--token", "ci:"+hex.EncodeToString(sum[:]), "--max-range", "0")
	c := p.client(&p.good)

	// Answers byte-identical to fmslice's, complete.
	from, to := unixArg(times[3]), unixArg(times[len(times)-3])
	for _, tc := range []struct{ from, to, filter, format string }{
		{"0", "now", "", "pcap"},
		{"0", "now", "tcp", "pcap"},
		{from, to, "", "pcap"},
		{from, to, "udp or icmp", "pcapng"},
		{"0", "now", "port 53", "pcapng"},
	} {
		resp, body := get(t, c, base+"/api/v1/pcap?"+q("from", tc.from, "to", tc.to, "filter", tc.filter, "format", tc.format))
		args := []string{"--store", st, "--from", tc.from, "--to", tc.to, "-q", "--format", tc.format}
		if tc.filter != "" {
			args = append(args, tc.filter)
		}
		want := run(t, bin("fmslice"), args...)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) || len(want) <= 24 {
			t.Errorf("%+v: status %d, %d bytes; fmslice wrote %d", tc, resp.StatusCode, len(body), len(want))
		}
		if resp.Trailer.Get("Fmcap-Complete") != "yes" {
			t.Errorf("%+v: trailer %v", tc, resp.Trailer)
		}
	}
	// JSON answers: those of the CLI.
	for _, tc := range []struct{ path, query string }{
		{"info", ""}, {"flows", q("from", "0", "to", "now")}, {"flows", q("from", "0", "to", "now", "filter", "udp", "by", "packets")},
	} {
		resp, body := get(t, c, base+"/api/v1/"+tc.path+"?"+tc.query)
		args := []string{tc.path, "--store", st, "--json"}
		vals, _ := url.ParseQuery(tc.query)
		if tc.path == "flows" {
			args = append(args, "-q", "--from", "0", "--to", "now")
			if by := vals.Get("by"); by != "" {
				args = append(args, "--by", by)
			}
			if f := vals.Get("filter"); f != "" {
				args = append(args, f)
			}
		}
		want := run(t, bin("fmslice"), args...)
		var g, w any
		if resp.StatusCode != 200 || json.Unmarshal(body, &g) != nil || json.Unmarshal(want, &w) != nil || fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s?%s: status %d\n%s\nwant\n%s", tc.path, tc.query, resp.StatusCode, body, want)
		}
	}
	// Refused requests: 400 with the CLI's words.
	for _, tc := range []struct{ query, cliFrom, cliFilter string }{
		{q("from", "yesterday", "to", "now"), "yesterday", ""},
		{q("from", "0", "to", "now", "filter", "port nonsense"), "0", "port nonsense"},
	} {
		resp, body := get(t, c, base+"/api/v1/pcap?"+tc.query)
		args := []string{"--store", st, "--from", tc.cliFrom, "--to", "now", "-q"}
		if tc.cliFilter != "" {
			args = append(args, tc.cliFilter)
		}
		_, stderr, code := runCode(t, bin("fmslice"), args...)
		cli := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr), "fmslice: "))
		if resp.StatusCode != 400 || code == 0 || strings.TrimSpace(string(body)) != cli {
			t.Errorf("%s: %d %q; the CLI said (exit %d) %q", tc.query, resp.StatusCode, body, code, cli)
		}
	}
	if resp, body := get(t, c, base+"/api/v1/pcap?"+q("from", "0", "to", "now", "bogus", "1")); resp.StatusCode != 400 || !strings.Contains(string(body), "unknown parameter") {
		t.Errorf("unknown parameter: %d %s", resp.StatusCode, body)
	}

	// Who may ask: no certificate, another CA's, an expired one, a wrong
	// token are refused (401); the listed token is taken.
	for name, cl := range map[string]*http.Client{"none": p.client(nil), "other CA": p.client(&p.other), "expired": p.client(&p.expired)} {
		if resp, body := get(t, cl, base+"/api/v1/info"); resp.StatusCode != 401 {
			t.Errorf("%s: status %d %s", name, resp.StatusCode, body)
		}
	}
	for tok, want := range map[string]int{token: 200, "wrong": 401} {
		req, _ := http.NewRequest("GET", base+"/api/v1/info", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := p.client(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}
	// Health and metrics.
	if resp, body := get(t, c, base+"/healthz"); resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	if _, body := get(t, c, base+"/metrics"); !strings.Contains(string(body), `fmcapd_queries_total{endpoint="pcap",status="200"} 5`) ||
		!strings.Contains(string(body), `fmcapd_refused_total{reason="auth"} 4`) {
		t.Errorf("metrics:\n%s", body)
	}
	// The audit: a line per request, with who and what.
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var refusedCA, tokenOK, analystPcap int
	for _, l := range lines {
		var a map[string]any
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		switch {
		case a["status"] == 401.0:
			refusedCA++
		case a["client"] == "token:ci" && a["status"] == 200.0:
			tokenOK++
		case a["client"] == "cert:analyst" && a["endpoint"] == "pcap" && a["status"] == 200.0 && a["complete"] == true:
			analystPcap++
		}
	}
	// Refused: no certificate, another CA's (the client, told which CAs
	// the server takes, offers none), an expired one, a wrong token.
	if refusedCA != 4 || !strings.Contains(string(b), "client certificate refused") || tokenOK != 1 || analystPcap != 5 {
		t.Errorf("audit: %d refusals (want 4, one of them a certificate refused), %d token queries (1), %d complete pcap queries (5):\n%s", refusedCA, tokenOK, analystPcap, b)
	}
	if st, err := os.Stat(audit); err != nil || st.Mode().Perm()&0o007 != 0 {
		t.Errorf("audit file mode %v", st.Mode())
	}
}

// TestFmcapdLimits: a range over max_range, a second query beyond
// max_concurrent, an answer cut at max_bytes (flagged), a damaged store's
// incomplete answer (flagged), and a client that goes away (its fmslice
// stopped).
func TestFmcapdLimits(t *testing.T) {
	big := store(t, []string{genCapture(t, 200000)})
	p := newPKI(t)
	base, _ := startFmcapd(t, p, "--store", big, "--max-concurrent", "1", "--max-range", "0")
	cut, _ := startFmcapd(t, p, "--store", big, "--max-range", "1h", "--max-bytes", "3000000")
	c := p.client(&p.good)
	if resp, body := get(t, c, cut+"/api/v1/pcap?"+q("from", "0")); resp.StatusCode != 400 || !strings.Contains(string(body), "max_range") {
		t.Errorf("open range: %d %s", resp.StatusCode, body)
	}
	// Cut at max_bytes, flagged as incomplete.
	ts := packetTimes(t, genCapture(t, 200000))
	resp, body := get(t, c, cut+"/api/v1/pcap?"+q("from", unixArg(ts[0]), "to", unixArg(ts[len(ts)-1]+1)))
	if resp.StatusCode != 200 || len(body) > 3000000 || resp.Trailer.Get("Fmcap-Complete") != "no" || !strings.Contains(resp.Trailer.Get("Fmcap-Error"), "max_bytes") {
		t.Errorf("max_bytes: %d, %d bytes, trailer %v", resp.StatusCode, len(body), resp.Trailer)
	}
	// One query held open (its body unread): a second gets 429. Closing the
	// first stops its fmslice: the next query runs.
	held, err := c.Get(base + "/api/v1/pcap?" + q("from", "0", "to", "now"))
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, c, base+"/api/v1/info"); resp.StatusCode != 429 || !strings.Contains(string(body), "max_concurrent") {
		t.Errorf("second query: %d %s", resp.StatusCode, body)
	}
	held.Body.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, m := get(t, c, base+"/metrics")
		if strings.Contains(string(m), "fmcapd_queries_running 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned query still runs after 60 s:\n%s", m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, _ := get(t, c, base+"/api/v1/info"); resp.StatusCode != 200 {
		t.Errorf("after the client went away: %d", resp.StatusCode)
	}
}

// TestRemoteFmslice: fmslice --server gives what a local fmslice gives, with
// the same exit status, for every command.
func TestRemoteFmslice(t *testing.T) {
	need(t, "tcpdump")
	inputs := []string{testdata("ns-http.pcap"), testdata("ns-mix-nano.pcap")}
	st := store(t, inputs)
	p := newPKI(t)
	base, _ := startFmcapd(t, p, "--store", st, "--max-range", "0")
	cut, _ := startFmcapd(t, p, "--store", st, "--max-range", "0", "--max-bytes", "1000")
	creds := []string{"--cert", p.clientCert, "--key", p.clientKey, "--ca", p.caFile}
	for _, args := range [][]string{
		{"--from", "0", "--to", "now", "-q"},
		{"--from", "0", "--to", "now", "-q", "--format", "pcapng", "tcp port 80"},
		{"flows", "--from", "0", "--to", "now", "-q"},
		{"flows", "--from", "0", "--to", "now", "-q", "--json", "udp"},
		{"info"},
		{"info", "--json"},
	} {
		largs := append([]string{"--store", st}, args...)
		if args[0] == "flows" || args[0] == "info" {
			largs = append([]string{args[0], "--store", st}, args[1:]...)
		}
		local, _, lcode := runCode(t, bin("fmslice"), largs...)
		var rargs []string
		if args[0] == "flows" || args[0] == "info" {
			rargs = append(append(append([]string{"--server", base}, creds...), args[0]), args[1:]...)
		} else {
			rargs = append(append([]string{"--server", base}, creds...), args...)
		}
		got, stderr, rcode := runCode(t, bin("fmslice"), rargs...)
		if rcode != lcode || !bytes.Equal(got, local) || lcode != 0 || len(local) == 0 {
			t.Errorf("%q: remote exit %d, %d bytes (%s); local exit %d, %d bytes", args, rcode, len(got), stderr, lcode, len(local))
		}
	}
	// Refused and incomplete answers: the local exit statuses, 1 and 3.
	if _, stderr, code := runCode(t, bin("fmslice"), append(append([]string{"--server", base}, creds...), "--from", "yesterday", "--to", "now")...); code != 1 || !strings.Contains(stderr, "yesterday") {
		t.Errorf("bad time: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runCode(t, bin("fmslice"), append(append([]string{"--server", cut}, creds...), "--from", "0", "--to", "now", "-q")...); code != 3 || !strings.Contains(stderr, "max_bytes") {
		t.Errorf("cut answer: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runCode(t, bin("fmslice"), "--server", base, "--ca", p.caFile, "info"); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("no credentials: exit %d: %s", code, stderr)
	}
}
