package fmcapd

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

var testStores = []store{{"main", "/srv/main"}, {"other", "/srv/other"}, {"far", "s3://bucket/fleet/n1"}}

func TestParseRequest(t *testing.T) {
	now := time.Unix(1764064800, 0)
	for _, c := range []struct {
		endpoint, query string
		want            string // fmslice's arguments, or the error's start
	}{
		{"pcap", "from=1764064700&to=now&filter=tcp", "--store /srv/main --from 1764064700.000000000 --to 1764064800.000000000 -q --format pcap -- tcp"},
		{"pcap", "from=-1m&to=now&format=pcapng&store=other", "--store /srv/other --from 1764064740.000000000 --to 1764064800.000000000 -q --format pcapng"},
		{"flows", "from=-1h&to=now&by=packets", "flows --store /srv/main --from 1764061200.000000000 --to 1764064800.000000000 --by packets -q --json"},
		{"timeline", "from=-1h&to=now&step=1m&filter=udp", "timeline --store /srv/main --from 1764061200.000000000 --to 1764064800.000000000 --step 1m --json -- udp"},
		{"info", "", "info --store /srv/main --json"},
		{"pcap", "from=-1m", "!the range must have both ends"},
		{"pcap", "from=-48h&to=now", "!the range must have both ends and be at most 24h0m0s"},
		{"pcap", "from=now&to=-1m", "!--from now is not before --to -1m"},
		{"pcap", "from=yesterday&to=now", "!--from: time \"yesterday\""},
		{"pcap", "from=-1m&to=now&format=csv", "!format \"csv\""},
		{"pcap", "from=-1m&to=now&filter=-w+/etc/passwd", "!filter \"-w /etc/passwd\": a tcpdump filter does not start with -"},
		{"pcap", "from=-1m&to=now&store=nope", "!store \"nope\": not served here"},
		{"pcap", "from=-1m&to=now&from=-2m", "!parameter \"from\" given 2 times"},
		{"info", "from=0", "!unknown parameter \"from\""},
		{"timeline", "from=-1m&to=now&step=0s", "!step \"0s\""},
		{"pcap", "from=-1m&to=now&filter=help", "!filter \"help\": not a tcpdump filter"},
		{"pcap", "from=-1m&to=now&incomplete=abort", "--store /srv/main --from 1764064740.000000000 --to 1764064800.000000000 -q --format pcap"},
		{"pcap", "from=-1m&to=now&incomplete=trailer", "--store /srv/main --from 1764064740.000000000 --to 1764064800.000000000 -q --format pcap"},
		{"pcap", "from=-1m&to=now&incomplete=never", "!incomplete \"never\": trailer or abort"},
		{"flows", "from=-1m&to=now&incomplete=abort", "!unknown parameter \"incomplete\""},
		{"pcap", "from=-1m&to=now&id=0123456789abcdef", "--store /srv/main --from 1764064740.000000000 --to 1764064800.000000000 -q --format pcap"},
		{"pcap", "from=-1m&to=now&id=short", "!id \"short\": 8 to 64 letters"},
		{"pcap", "from=-1m&to=now&store=far", "--store s3://bucket/fleet/n1 --cache /var/cache/fmcapd --from 1764064740.000000000 --to 1764064800.000000000 -q --format pcap"},
		{"flows", "from=-1m&to=now&store=far", "flows --store s3://bucket/fleet/n1 --cache /var/cache/fmcapd --from 1764064740.000000000 --to 1764064800.000000000 -q --json"},
		{"info", "store=far", "info --store s3://bucket/fleet/n1 --cache /var/cache/fmcapd --json"},
		{"timeline", "from=-1m&to=now&step=1s&store=far", "timeline --store s3://bucket/fleet/n1 --cache /var/cache/fmcapd --from 1764064740.000000000 --to 1764064800.000000000 --step 1s --json"},
		{"pcap", "from=-1m&to=now&id=../../etc/passwd", "!id \"../../etc/passwd\": 8 to 64 letters"},
	} {
		v, _ := url.ParseQuery(c.query)
		r, err := parseRequest(c.endpoint, v, testStores, "/var/cache/fmcapd", now, 24*time.Hour)
		if want, isErr := strings.CutPrefix(c.want, "!"); isErr {
			var br *badRequest
			if err == nil || !errors.As(err, &br) || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s?%s: %v, want an error starting %q", c.endpoint, c.query, err, want)
			}
			continue
		}
		if err != nil || strings.Join(r.args, " ") != c.want {
			t.Errorf("%s?%s: %v %q\nwant %q", c.endpoint, c.query, err, r.args, c.want)
		}
	}
}

// FuzzParseRequest: any query string is refused with a bad-request error
// or turned into arguments where nothing a client gives can be taken by
// fmslice as an option: the filter, if any, comes last, after "--".
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"from=-1m&to=now&filter=tcp", "from=0&to=1&format=pcapng", "step=1s&from=-1h&to=now", "store=other", "filter=--help", "incomplete=abort", "%zz"} {
		f.Add("pcap", s)
		f.Add("timeline", s)
	}
	f.Fuzz(func(t *testing.T, endpoint, query string) {
		if endpoint != "pcap" && endpoint != "flows" && endpoint != "timeline" && endpoint != "info" {
			return
		}
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		r, err := parseRequest(endpoint, v, testStores, "/c", time.Unix(1764064800, 0), 0)
		if err != nil {
			var br *badRequest
			if !errors.As(err, &br) {
				t.Fatalf("not a bad request: %v", err)
			}
			return
		}
		for i, a := range r.args {
			if a == "--" {
				if i != len(r.args)-2 {
					t.Fatalf("-- not before the last argument: %q", r.args)
				}
				break
			}
			if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && a != "-q" {
				t.Fatalf("argument %q", a)
			}
		}
		if v.Get("filter") != "" && r.args[len(r.args)-1] != v.Get("filter") {
			t.Fatalf("filter %q not last: %q", v.Get("filter"), r.args)
		}
	})
}
