package testpkt

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Testdata is the repository's testdata directory, wherever the test runs.
func Testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata")
}

// Reader is one capture file, pcap or pcapng, opened for its packets.
type Reader struct {
	Link layers.LinkType
	Next func() ([]byte, gopacket.CaptureInfo, error) // io.EOF at the end
}

// Open reads a capture from r, pcap or pcapng by its first bytes' magic.
func Open(r io.Reader) (*Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, err
	}
	if string(magic) == "\x0a\x0d\x0d\x0a" { // pcapng section header block
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, err
		}
		return &Reader{Link: ng.LinkType(), Next: ng.ReadPacketData}, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, err
	}
	return &Reader{Link: pr.LinkType(), Next: pr.ReadPacketData}, nil
}

// Corpus is every Ethernet frame of the real captures in testdata/ (the
// README there says where each came from); it fails t with fewer than 100.
func Corpus(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	files, _ := filepath.Glob(filepath.Join(Testdata(), "*.pcap*"))
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(fh)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for r.Link == layers.LinkTypeEthernet {
			b, _, err := r.Next()
			if err != nil {
				break
			}
			out = append(out, b)
		}
		fh.Close()
	}
	if len(out) < 100 {
		t.Fatalf("corpus: %d frames", len(out))
	}
	return out
}
