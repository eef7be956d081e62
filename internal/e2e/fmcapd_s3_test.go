package e2e

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/internal/s3test"
)

// TestFmcapdObjectStore: fmcapd serves a store in object storage (the real
// versitygw) beside a local one: its pcap answers are byte for byte the
// local fmslice's over the same data, complete; its fmslice gets the AWS
// chain from fmcapd's environment; flows, info and timeline are fmslice's
// over the bucket, and the timeline's is the local store's.
func TestFmcapdObjectStore(t *testing.T) {
	need(t, "tcpdump")
	srv := s3test.Start(t)
	s3Env(t, srv)
	st := indexedStore(t, []string{multiFlow(t, 40000)}, "--frame-size", "64KiB", "--chunk-size", "2MiB")
	upload(t, st, "n1")
	p := newPKI(t)
	base, _ := startFmcapd(t, p, "--store", "local="+st, "--store", "far=s3://"+s3test.Bucket+"/fleet/n1",
		"--cache", t.TempDir(), "--max-range", "0")
	c := p.client(&p.good)
	si := storeInfo(t, st)
	mid := []string{unixArg(si.FirstNS + (si.LastNS-si.FirstNS)/3), unixArg(si.FirstNS + 2*(si.LastNS-si.FirstNS)/3)}
	for _, tc := range []struct{ from, to, filter, format string }{
		{"0", "now", "", "pcap"},
		{mid[0], mid[1], "tcp", "pcap"},
		{"0", "now", "host 198.18.1.2", "pcapng"},
		{mid[0], mid[1], "udp and port 53", "pcapng"},
	} {
		resp, body := get(t, c, base+"/api/v1/pcap?"+q("store", "far", "from", tc.from, "to", tc.to, "filter", tc.filter, "format", tc.format))
		args := []string{"--store", st, "--from", tc.from, "--to", tc.to, "-q", "--format", tc.format}
		if tc.filter != "" {
			args = append(args, tc.filter)
		}
		want := run(t, bin("fmslice"), args...)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) || len(want) <= 32 || resp.Trailer.Get("Fmcap-Complete") != "yes" {
			t.Errorf("%+v from the bucket: status %d, %d bytes, trailer %v; the local fmslice wrote %d", tc, resp.StatusCode, len(body), resp.Trailer, len(want))
		}
	}
	// flows, info and timeline: what fmslice answers from the bucket, byte
	// for byte.
	remote := "s3://" + s3test.Bucket + "/fleet/n1"
	for _, tc := range []struct {
		endpoint string
		query    []string
		args     []string
	}{
		{"flows", []string{"from", "0", "to", "now", "filter", "tcp"}, []string{"--from", "0", "--to", "now", "-q", "--json", "tcp"}},
		{"info", nil, []string{"--json"}},
		{"timeline", []string{"from", mid[0], "to", mid[1], "step", "1s", "filter", "udp"}, []string{"--from", mid[0], "--to", mid[1], "--step", "1s", "-q", "--json", "udp"}},
	} {
		resp, body := get(t, c, base+"/api/v1/"+tc.endpoint+"?"+q(append([]string{"store", "far"}, tc.query...)...))
		want := run(t, bin("fmslice"), append([]string{tc.endpoint, "--store", remote, "--cache", t.TempDir()}, tc.args...)...)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) || len(want) < 100 {
			t.Errorf("%s of the bucket's store: %d, %d bytes; the CLI wrote %d:\n%s", tc.endpoint, resp.StatusCode, len(body), len(want), body)
		}
	}
	// The bucket's timeline is the local store's.
	args := []string{"timeline", "--from", mid[0], "--to", mid[1], "--step", "1s", "-q", "--json"}
	local := run(t, bin("fmslice"), append(args, "--store", st, "udp")...)
	far := run(t, bin("fmslice"), append(args, "--store", remote, "--cache", t.TempDir(), "udp")...)
	if !bytes.Equal(local, far) || !strings.Contains(string(local), `"packets"`) {
		t.Errorf("timeline from the bucket differs from the local store's:\n%s\n%s", far, local)
	}
}
