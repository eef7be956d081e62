package libpcap

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/internal/libpcap/pcapcraft"
)

const intake = "../../testdata/intake"

type got struct {
	caplens []uint32
	snapped int
	err     string
}

func readAll(t *testing.T, f *File) got {
	t.Helper()
	var g got
	var last int64 = -1
	for {
		p, err := f.Next()
		if err == io.EOF {
			return g
		}
		if err != nil {
			g.err = err.Error()
			return g
		}
		if len(p.Data) != int(p.Caplen) || p.Caplen > f.Snaplen() {
			t.Fatalf("record %d: %d bytes, caplen %d, snaplen %d", len(g.caplens)+1, len(p.Data), p.Caplen, f.Snaplen())
		}
		if p.Start < last || p.End <= p.Start {
			t.Fatalf("record %d: offsets %d..%d after %d", len(g.caplens)+1, p.Start, p.End, last)
		}
		last = p.End
		g.caplens = append(g.caplens, p.Caplen)
		if p.Snapped {
			g.snapped++
		}
	}
}

// TestCraftedFiles: what libpcap makes of each crafted file, read from the
// file and from a pipe (where ftell does not work, and offsets and the
// snapped flag must still be right).
func TestCraftedFiles(t *testing.T) {
	cases := []struct {
		file    string
		dlt     int
		format  Format
		caplens []uint32
		snapped int
		err     string
	}{
		{"overlong.pcap", 1, FormatPcap, []uint32{60, 96, 96, 96, 70, 64}, 2, ""},
		{"over-max.pcap", 1, FormatPcap, []uint32{60}, 0, "record 2 (from byte 100): invalid packet capture length 300000"},
		{"linktype-257.pcap", 257, FormatPcap, []uint32{60}, 0, ""},
		{"dsa-brcm.pcap", 281, FormatPcap, []uint32{64}, 0, ""},
		{"mixed-linktypes.pcapng", 1, FormatPcapng, nil, 0, "record 1 (from byte 48): an interface has a type 113 different from the type of the first interface"},
		{"far-future.pcapng", 1, FormatPcapng, []uint32{60, 60, 60, 60}, 0, ""},
		{"truncated.pcap", 1, FormatPcap, []uint32{60, 80}, 0, "record 3 (from byte 196): truncated dump file"},
		{"ng-overlong.pcapng", 1, FormatPcapng, []uint32{60}, 0, "record 2 (from byte 140): invalid packet capture length 200, bigger than snaplen of 128"},
		{"ng-snaplen0.pcapng", 1, FormatPcapng, []uint32{1500, 9000}, 0, ""},
	}
	for _, tc := range cases {
		for _, how := range []string{"file", "pipe"} {
			t.Run(tc.file+"/"+how, func(t *testing.T) {
				path := filepath.Join(intake, tc.file)
				var f *File
				var err error
				if how == "file" {
					f, err = Open(path)
				} else {
					f, err = openPipe(t, path)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if f.LinkType() != tc.dlt || f.Format() != tc.format {
					t.Fatalf("link type %d, format %v; want %d, %v", f.LinkType(), f.Format(), tc.dlt, tc.format)
				}
				g := readAll(t, f)
				if !slices.Equal(g.caplens, tc.caplens) || g.snapped != tc.snapped {
					t.Fatalf("caplens %v (%d snapped), want %v (%d)", g.caplens, g.snapped, tc.caplens, tc.snapped)
				}
				if !strings.Contains(g.err, tc.err) || (tc.err == "") != (g.err == "") {
					t.Fatalf("error %q, want %q", g.err, tc.err)
				}
			})
		}
	}
}

// TestModifiedFormatAndFCS: records cut to the snaplen are recognised in
// the modified format too (24-byte record headers), and the FCS length a
// pcap link type field carries is read.
func TestModifiedFormatAndFCS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mod.pcap")
	os.WriteFile(path, pcapcraft.PcapModified(100, 0x24000001,
		pcapcraft.R(1, 0, pcapcraft.Frame(100, 1), 100), pcapcraft.R(2, 0, pcapcraft.Frame(101, 2), 101),
		pcapcraft.R(3, 0, pcapcraft.Frame(60, 3), 60), pcapcraft.R(4, 0, pcapcraft.Frame(2000, 4), 2000)), 0o644)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Format() != FormatPcapModified || f.LinkType() != 1 {
		t.Fatalf("format %v, link type %d", f.Format(), f.LinkType())
	}
	if n, ok := f.FCSLength(); n != 4 || !ok {
		t.Fatalf("FCS length %d, %v; want 4, true", n, ok)
	}
	// libpcap adds 14 to the snaplen of a modified Ethernet file (sf-pcap.c:
	// such files captured in cooked mode had their snaplen short of the
	// faked Ethernet header).
	if f.Snaplen() != 114 {
		t.Fatalf("snaplen %d, want 114", f.Snaplen())
	}
	g := readAll(t, f)
	if !slices.Equal(g.caplens, []uint32{100, 101, 60, 114}) || g.snapped != 1 || g.err != "" {
		t.Fatalf("%+v", g)
	}
	f2, _ := Open(filepath.Join(intake, "overlong.pcap"))
	defer f2.Close()
	if n, ok := f2.FCSLength(); n != 0 || ok {
		t.Fatalf("FCS length %d, %v for a file that says nothing", n, ok)
	}
}

// openPipe opens path's bytes through a pipe.
func openPipe(t *testing.T, path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.Write(b); w.Close() }()
	fd, err := dup(int(r.Fd()))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	return OpenFD(fd, "pipe")
}

// TestTimes: nanoseconds from µs and ns pcap and from pcapng, and pcapng's
// 64-bit seconds after 2106 whole.
func TestTimes(t *testing.T) {
	cases := []struct {
		file string
		want [][2]int64
	}{
		{"far-future.pcapng", [][2]int64{{1_700_000_000, 123}, {1<<32 - 1, 999_999_999}, {1 << 32, 5}, {7_258_118_400, 42}}},
		{"beyond-2262.pcapng", [][2]int64{{1_700_000_000, 0}, {10_413_792_000, 0}}},
		{"overlong.pcap", [][2]int64{{1_700_000_000, 1}, {1_700_000_000, 2}, {1_700_000_001, 3}, {1_700_000_001, 4}, {1_700_000_002, 5}, {1_700_000_003, 6}}},
		{"truncated.pcap", [][2]int64{{1_700_000_000, 0}, {1_700_000_000, 1000}}},
	}
	for _, tc := range cases {
		f, err := Open(filepath.Join(intake, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			p, err := f.Next()
			if err != nil {
				t.Fatalf("%s record %d: %v", tc.file, i+1, err)
			}
			if p.Sec != w[0] || p.Nsec != w[1] {
				t.Errorf("%s record %d: %d.%09d, want %d.%09d", tc.file, i+1, p.Sec, p.Nsec, w[0], w[1])
			}
		}
		f.Close()
	}
}

func TestNotACaptureFile(t *testing.T) {
	_, err := Open(filepath.Join(intake, "README.md"))
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "magic 65742023") {
		t.Fatalf("got %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestLinkTypeNames(t *testing.T) {
	for dlt, want := range map[int]string{1: "EN10MB", 257: "PROFIBUS_DL", 281: "DSA_TAG_BRCM", 282: "DSA_TAG_BRCM_PREPEND", 284: "DSA_TAG_DSA", 285: "DSA_TAG_EDSA", 100000: ""} {
		if got := LinkTypeName(dlt); got != want {
			t.Errorf("LinkTypeName(%d) = %q, want %q", dlt, got, want)
		}
	}
	if got := LinkTypeDescription(1); got != "Ethernet" {
		t.Errorf("LinkTypeDescription(1) = %q", got)
	}
}

// TestNextDoesNotAllocate: reading is one cgo call and no allocation per
// packet.
func TestNextDoesNotAllocate(t *testing.T) {
	var recs []pcapcraft.Rec
	for i := 0; i < 3000; i++ {
		recs = append(recs, pcapcraft.R(1, uint32(i), pcapcraft.Frame(60+i%1000, byte(i)), uint32(60+i%1000)))
	}
	path := filepath.Join(t.TempDir(), "many.pcap")
	os.WriteFile(path, pcapcraft.Pcap(pcapcraft.MagicNano, 65535, 1, recs...), 0o644)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := f.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}

// FuzzRead: whatever the bytes, reading never crashes, and every packet
// libpcap returns is within the snaplen with its offsets in order.
func FuzzRead(f *testing.F) {
	for _, c := range pcapcraft.Files() {
		f.Add(c.Bytes)
	}
	for _, name := range []string{"gopacket-dns.pcap", "ns-dumpcap.pcapng"} {
		if b, err := os.ReadFile(filepath.Join("../../testdata", name)); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "in")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		pf, err := Open(path)
		if err != nil {
			return
		}
		defer pf.Close()
		readAll(t, pf)
	})
}

// BenchmarkNext reads 1000-byte packets: one cgo call each, no allocation.
func BenchmarkNext(b *testing.B) {
	var recs []pcapcraft.Rec
	for i := 0; i < 10000; i++ {
		recs = append(recs, pcapcraft.R(1, uint32(i), pcapcraft.Frame(1000, byte(i)), 1000))
	}
	path := filepath.Join(b.TempDir(), "bench.pcap")
	os.WriteFile(path, pcapcraft.Pcap(pcapcraft.MagicNano, 65535, 1, recs...), 0o644)
	b.ReportAllocs()
	b.SetBytes(1000)
	b.ResetTimer()
	var f *File
	for i := 0; i < b.N; i++ {
		if i%len(recs) == 0 {
			if f != nil {
				f.Close()
			}
			var err error
			if f, err = Open(path); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := f.Next(); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
}
