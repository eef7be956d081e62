package main

// fmslice --server: the same commands against a remote fmcapd (package
// fmcapd), with the same output and exit status as a local run: the pcap
// or pcapng bytes (to -w or stdout), flows, timeline and info as text or
// --json; exit 3 when the answer is incomplete (fmcapd's trailer
// Fmcap-Complete is not "yes": damaged frames, or fmcapd cut the answer),
// 1 when the request is refused (fmcapd's reason on stderr). --store names
// one of the server's stores (default: its first). Credentials: --cert and
// --key (a client certificate), or --token (FMCAP_SLICE_TOKEN); --ca the
// CA that signed the server's certificate (default: the system's).

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fmcap/fmcap/internal/fsmode"
)

// remoteMain runs fmslice against a server when args (or the environment)
// name one; ok is false otherwise.
func remoteMain(args []string) (code int, ok bool) {
	server := os.Getenv("FMCAP_SLICE_SERVER")
	for i, a := range args {
		if a == "--server" && i+1 < len(args) {
			server = args[i+1]
		} else if v, found := strings.CutPrefix(a, "--server="); found {
			server = v
		}
	}
	if server == "" {
		return 0, false
	}
	if err := remote(args, os.Stdout); err != nil {
		if e, isExit := err.(exitError); isExit {
			fmt.Fprintln(os.Stderr, "fmslice:", e.msg)
			return e.code, true
		}
		fmt.Fprintln(os.Stderr, "fmslice:", err)
		return 1, true
	}
	return 0, true
}

type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func remote(args []string, stdout io.Writer) error {
	g := flag.NewFlagSet("fmslice", flag.ContinueOnError)
	g.SetOutput(io.Discard)
	server := g.String("server", os.Getenv("FMCAP_SLICE_SERVER"), "")
	cert, key, ca := g.String("cert", "", ""), g.String("key", "", ""), g.String("ca", "", "")
	token := g.String("token", os.Getenv("FMCAP_SLICE_TOKEN"), "")
	store := g.String("store", "", "")
	from, to := g.String("from", "", ""), g.String("to", "", "")
	out := g.String("w", "-", "")
	g.StringVar(out, "write", "-", "")
	format := g.String("format", "pcap", "")
	quiet := g.Bool("q", false, "")
	g.BoolVar(quiet, "quiet", false, "")
	if err := g.Parse(args); err != nil {
		return fmt.Errorf("%v (with --server: --cert --key --ca --token --store NAME --from --to -w --format -q, then a command or a filter)", err)
	}
	rest := g.Args()
	endpoint := "pcap"
	v := url.Values{}
	if len(rest) > 0 && (rest[0] == "flows" || rest[0] == "info" || rest[0] == "timeline") {
		endpoint = rest[0]
		c := flag.NewFlagSet(endpoint, flag.ContinueOnError)
		c.SetOutput(io.Discard)
		c.StringVar(from, "from", *from, "")
		c.StringVar(to, "to", *to, "")
		c.StringVar(store, "store", *store, "")
		by, step := c.String("by", "", ""), c.String("step", "", "")
		asJSON := c.Bool("json", false, "")
		c.BoolVar(quiet, "q", *quiet, "")
		if err := c.Parse(rest[1:]); err != nil {
			return fmt.Errorf("%s: %v", endpoint, err)
		}
		rest = c.Args()
		if *by != "" {
			v.Set("by", *by)
		}
		if *step != "" {
			v.Set("step", *step)
		}
		if !*asJSON {
			v.Set("output", "text")
		}
	} else {
		v.Set("format", *format)
	}
	if endpoint != "info" {
		if *from != "" {
			v.Set("from", *from)
		}
		if *to != "" {
			v.Set("to", *to)
		}
		if f := strings.Join(rest, " "); f != "" {
			v.Set("filter", f)
		}
	}
	if *store != "" {
		v.Set("store", *store)
	}
	tc := &tls.Config{}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca %s: no PEM certificate in it", *ca)
		}
	}
	if *cert != "" || *key != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return fmt.Errorf("--cert/--key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	req, err := http.NewRequest("GET", strings.TrimRight(*server, "/")+"/api/v1/"+endpoint+"?"+v.Encode(), nil)
	if err != nil {
		return fmt.Errorf("--server %q: %w", *server, err)
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, ResponseHeaderTimeout: 10 * time.Minute}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return exitError{1, fmt.Sprintf("%s (server: %s)", strings.TrimSpace(string(b)), resp.Status)}
	}
	w := stdout
	if *out != "-" && endpoint == "pcap" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fsmode.File)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, resp.Body)
	if f, isFile := w.(*os.File); isFile && f != os.Stdout {
		if cerr := f.Close(); cerr != nil && err == nil {
			return fmt.Errorf("-w %s: %w", *out, cerr)
		}
	}
	if err != nil {
		return exitError{exitIncomplete, fmt.Sprintf("answer cut after %d bytes: %v", n, err)}
	}
	if c := resp.Trailer.Get("Fmcap-Complete"); c != "yes" {
		return exitError{exitIncomplete, fmt.Sprintf("incomplete answer from the server: %s", resp.Trailer.Get("Fmcap-Error"))}
	}
	if !*quiet && endpoint == "pcap" {
		fmt.Fprintf(os.Stderr, "%d bytes from %s\n", n, *server)
	}
	return nil
}
