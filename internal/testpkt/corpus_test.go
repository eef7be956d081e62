package testpkt

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/layers"
)

// Open tells pcap from pcapng by the magic and reads every packet of both;
// anything else is refused.
func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		link layers.LinkType
	}{
		{"ns-http.pcap", layers.LinkTypeEthernet},
		{"ns-dumpcap.pcapng", layers.LinkTypeEthernet},
		{"gopacket-loopback-null.pcap", layers.LinkTypeNull},
	} {
		b, err := os.ReadFile(filepath.Join(Testdata(), tc.name))
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Link != tc.link {
			t.Errorf("%s: link %v, want %v", tc.name, r.Link, tc.link)
		}
		n := 0
		for {
			_, _, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: packet %d: %v", tc.name, n, err)
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s: no packet read", tc.name)
		}
	}
	if _, err := Open(bytes.NewReader([]byte("not a capture file"))); err == nil {
		t.Error("Open accepted a file that is no capture")
	}
}
