// Package testpkt makes numbered test packets and checks a store made of
// them: every seq present exactly once, each holding its own packet. Tests of
// the writer and the end-to-end tests share it.
package testpkt

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/fmcap/fmcap/store/chunk"
)

// Base is the capture time of packet 0; packet i is i µs later.
const Base = int64(1767323045_000_000_000) // 2026-01-02T03:04:05Z

// Packet builds packet i (an Ethernet/IPv4/UDP frame of 60 to 199 bytes
// whose payload starts with i) in buf, which must hold 256 bytes.
func Packet(i int, buf []byte) []byte {
	l := 60 + i%140
	p := buf[:l]
	clear(p)
	copy(p, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0})
	binary.BigEndian.PutUint16(p[16:], uint16(l-14))
	copy(p[22:], []byte{64, 17})
	copy(p[26:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	binary.BigEndian.PutUint16(p[34:], 1000)
	binary.BigEndian.PutUint16(p[36:], 2000)
	binary.BigEndian.PutUint16(p[38:], uint16(l-34))
	binary.BigEndian.PutUint64(p[42:], uint64(i))
	return p
}

// Capture is a pcap file (nanosecond) of packets 0..n-1.
func Capture(n int) []byte {
	b := chunk.PcapHeader()
	buf := make([]byte, 256)
	for i := 0; i < n; i++ {
		p := Packet(i, buf)
		b, _ = chunk.AppendPacket(b, Base+int64(i)*1000, uint32(len(p)), p)
	}
	return b
}

// CheckStore verifies that the store in dir holds seqs 1..n exactly once,
// seq s holding packet s-1, in finished chunks with intact tables, and no
// temporary file.
func CheckStore(dir string, n int) error { return CheckStoreFrom(dir, 1, n) }

// CheckStoreFrom is CheckStore for a store whose seqs before from were
// removed (by retention).
func CheckStoreFrom(dir string, from uint64, n int) error {
	list, err := chunk.List(dir)
	if err != nil {
		return err
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	want := from
	for _, in := range list {
		if in.Open {
			return fmt.Errorf("chunk %s left open", in.Name)
		}
		if in.FirstSeq != want {
			return fmt.Errorf("chunk %s starts at seq %d, want %d", in.Name, in.FirstSeq, want)
		}
		r, err := chunk.OpenReader(dir, in, dec)
		if err != nil {
			return err
		}
		if r.Note != "" {
			r.Close()
			return fmt.Errorf("chunk %s: %s", in.Name, r.Note)
		}
		for i, f := range r.Table.Frames {
			if f.FirstSeq != want {
				r.Close()
				return fmt.Errorf("chunk %s frame %d starts at seq %d, want %d", in.Name, i, f.FirstSeq, want)
			}
			b, err := r.ReadFrame(i, nil)
			if err != nil {
				r.Close()
				return err
			}
			var bad error
			err = chunk.Packets(b, i == 0, func(p chunk.Packet) bool {
				if len(p.Data) < 50 {
					bad = fmt.Errorf("seq %d: %d-byte packet", want, len(p.Data))
					return false
				}
				if idx := binary.BigEndian.Uint64(p.Data[42:]); idx != want-1 {
					bad = fmt.Errorf("seq %d holds packet %d", want, idx)
					return false
				}
				want++
				return true
			})
			if err == nil {
				err = bad
			}
			if err == nil && want-1 != f.LastSeq {
				err = fmt.Errorf("frame %d of %s: table says last seq %d, packets end at %d", i, in.Name, f.LastSeq, want-1)
			}
			if err != nil {
				r.Close()
				return err
			}
		}
		r.Close()
	}
	if want-1 != uint64(n) {
		return fmt.Errorf("store holds seqs %d..%d, want %d..%d", from, want-1, from, n)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			return fmt.Errorf("temporary file left in the store: %s", e.Name())
		}
	}
	return nil
}

// TB is the part of testing.TB the helpers here use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// DiffText fails t unless got and want are the same text, naming the first
// line that differs (tests compare tcpdump's text of two captures with it).
func DiffText(t TB, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) && i < len(w); i++ {
		if g[i] != w[i] {
			t.Fatalf("%s: line %d differs (got %d lines, want %d)\n got: %s\nwant: %s", what, i+1, len(g), len(w), g[i], w[i])
		}
	}
	t.Fatalf("%s: got %d lines, want %d", what, len(g), len(w))
}
