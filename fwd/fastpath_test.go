package fwd

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
)

const tcActRedirect = 7

// testFastpath loads the fast path's programs (attached nowhere) with one
// rule: frames from A to X arriving on the loopback device (where the
// kernel's test runs put them) leave as Y → B towards B's MAC.
func testFastpath(t testing.TB) *fastpath {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root (CI runs as root)")
	}
	fp, err := loadFastpath()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fp.close)
	var k fpKey
	var v fpValue
	binary.NativeEndian.PutUint32(k[0:], 1) // lo
	copy(k[4:], ipX)
	copy(k[8:], ipA)
	binary.NativeEndian.PutUint32(v[0:], 42)
	copy(v[4:], ipY)
	copy(v[8:], ipB)
	copy(v[16:], macB[:])
	copy(v[22:], macP1[:])
	copy(v[28:], macP0[:])
	binary.NativeEndian.PutUint16(v[34:], 1500+etherHdrLen)
	binary.NativeEndian.PutUint16(v[36:], 1500)
	if err := fp.rules.Put(k[:], v[:]); err != nil {
		t.Fatal(err)
	}
	return fp
}

// runBoth runs a frame through the socket filter and the tc program: the
// filter's verdict (true: the frame is the fast path's), the tc program's
// return code and the frame it leaves.
func runBoth(t testing.TB, fp *fastpath, f []byte) (fast bool, rc uint32, out []byte, ok bool) {
	// A test run of a socket filter strips an Ethernet header first (on a
	// packet socket the filter sees the frame from its MAC header): give
	// it one to strip.
	frc, err := fp.filter.Run(&ebpf.RunOptions{Data: append([]byte{12: 0x08, 13: 0}, f...)})
	if err != nil {
		return false, 0, nil, false // too short for a test run (under 14 bytes)
	}
	out = make([]byte, len(f)+64)
	opts := &ebpf.RunOptions{Data: f, DataOut: out}
	rc, err = fp.tc.Run(opts)
	if err != nil {
		return false, 0, nil, false // a frame the kernel's test run refuses (an IPv4 ethertype with no header)
	}
	return frc == 0, rc, opts.DataOut, true
}

func TestFastpathPrograms(t *testing.T) {
	fp := testFastpath(t)
	withTTL := func(f []byte, ttl uint8) []byte {
		g := bytes.Clone(f)
		g[22] = ttl // the header checksum is left wrong: the frame is refused before it matters
		return g
	}
	withLen := func(f []byte, n int) []byte {
		g := bytes.Clone(f)
		binary.BigEndian.PutUint16(g[etherHdrLen+2:], uint16(n))
		return g
	}
	udp := udpFrame(macA, macP0, ipA, ipX, "hello through the kernel")
	tcp := tcpFrame(macA, macP0, ipA, ipX, "hello through the kernel")
	zero := bytes.Clone(udp)
	binary.BigEndian.PutUint16(zero[etherHdrLen+20+6:], 0)
	frag := build(eth(macA, macP0), &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ipA, DstIP: ipX, Flags: layers.IPv4MoreFragments},
		&layers.UDP{SrcPort: 1, DstPort: 2})
	opts := build(eth(macA, macP0), &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ipA, DstIP: ipX,
		Options: []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}}}, &layers.UDP{SrcPort: 1, DstPort: 2})
	for _, tc := range []struct {
		name string
		f    []byte
		fast bool
	}{
		{"udp", udp, true},
		{"tcp", tcp, true},
		{"udp zero checksum", zero, true},
		{"ttl 1", withTTL(udp, 1), false},
		{"ttl 2", withTTL(udp, 2), true},
		{"fragment", frag, false},
		{"ip options", opts, false},
		{"broadcast", udpFrame(macA, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ipA, ipX, "x"), false},
		{"foreign mac", udpFrame(macA, macB, ipA, ipX, "x"), false},
		{"no rule (source)", udpFrame(macA, macP0, ipB, ipX, "x"), false},
		{"no rule (destination)", udpFrame(macA, macP0, ipA, ipY, "x"), false},
		{"icmp", build(eth(macA, macP0), ip(ipA, ipX, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), false},
		{"arp", arpFrame(1, macA, ipA, [6]byte{}, ipX), false},
		{"longer than the MTU", udpFrame(macA, macP0, ipA, ipX, string(make([]byte, 1500))), false},
		{"ip length past the frame", withLen(udp, len(udp)-etherHdrLen+1), false},
		{"ip length short of the udp header", withLen(udp, 27), false},
		{"padded", append(bytes.Clone(udp), 0, 0, 0, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast, rc, out, ok := runBoth(t, fp, tc.f)
			if !ok {
				t.Fatal("the kernel refused the test run")
			}
			if fast != tc.fast {
				t.Fatalf("socket filter: fast path %v, want %v", fast, tc.fast)
			}
			if !tc.fast {
				if int32(rc) != tcxNext || !bytes.Equal(out, tc.f) {
					t.Fatalf("tc program: %d and the frame changed, want TCX_NEXT (-1) and the frame as it was", int32(rc))
				}
				return
			}
			if rc != tcActRedirect {
				t.Fatalf("tc program returned %d, want TC_ACT_REDIRECT", rc)
			}
			if len(out) != len(tc.f) {
				t.Fatalf("frame of %d bytes left %d", len(tc.f), len(out))
			}
			wantMACs(t, out, macP1, macB)
			if !bytes.Equal(out[26:30], ipY) || !bytes.Equal(out[30:34], ipB) {
				t.Errorf("addresses %v → %v, want Y → B", out[26:30], out[30:34])
			}
			if out[22] != tc.f[22]-1 {
				t.Errorf("TTL %d, want %d", out[22], tc.f[22]-1)
			}
			if tc.name == "ttl 2" {
				return // its header checksum was wrong coming in
			}
			checkSums(t, out)
			if tc.name == "udp zero checksum" && binary.BigEndian.Uint16(out[etherHdrLen+20+6:]) != 0 {
				t.Error("a zero UDP checksum (none) became one")
			}
			// Everything past the headers is untouched.
			h := etherHdrLen + 20 + 8
			if out[23] == protoTCP {
				h = etherHdrLen + 20 + int(out[etherHdrLen+20+12]>>4)*4
			}
			if !bytes.Equal(out[h:], tc.f[h:]) {
				t.Error("the frame's payload changed")
			}
		})
	}
	// The counter slot (0) counted the fast frames: 5, and their bytes.
	var per []fpCount
	if err := fp.counts.Lookup(uint32(0), &per); err != nil {
		t.Fatal(err)
	}
	var n fpCount
	for _, c := range per {
		n.Frames += c.Frames
		n.Bytes += c.Bytes
	}
	want := uint64(len(udp) + len(tcp) + len(zero) + len(udp) + len(udp) + 4)
	if n.Frames != 5 || n.Bytes != want {
		t.Errorf("counted %d frames, %d bytes; want 5, %d", n.Frames, n.Bytes, want)
	}
}

// TestFastpathSuperFrames: a super-frame (gso_size set, as the kernel's
// test run lets a context say) goes the fast way when its segments fit
// the outgoing MTU (IPv4 header, TCP header by its data offset, gso_size),
// and to fwd when they do not.
func TestFastpathSuperFrames(t *testing.T) {
	fp := testFastpath(t)
	f := tcpFrame(macA, macP0, ipA, ipX, string(make([]byte, 3000))) // TCP header 32 bytes; a test run takes at most a page
	for _, tc := range []struct {
		gso  uint32
		fast bool
	}{{1448, true}, {1449, false}, {1000, true}} {
		var ctx [48]uint32 // struct __sk_buff
		ctx[skbGSOSize/4] = tc.gso
		ctx[skbGSOSegs/4] = uint32((3000 + tc.gso - 1) / tc.gso)
		frc, err := fp.filter.Run(&ebpf.RunOptions{Data: append([]byte{12: 0x08, 13: 0}, f...), Context: ctx})
		if err != nil {
			t.Fatalf("gso %d: socket filter test run: %v", tc.gso, err)
		}
		out := make([]byte, len(f)+64)
		opts := &ebpf.RunOptions{Data: f, DataOut: out, Context: ctx}
		rc, err := fp.tc.Run(opts)
		if err != nil {
			t.Fatalf("gso %d: tc test run: %v", tc.gso, err)
		}
		if (frc == 0) != tc.fast || (rc == tcActRedirect) != tc.fast {
			t.Errorf("gso_size %d: socket filter %d, tc program %d; want the fast path %v", tc.gso, int32(frc), int32(rc), tc.fast)
		}
		if tc.fast {
			checkSums(t, opts.DataOut)
		}
	}
}

// FuzzFastpath: any frame: the two programs agree (the socket drops
// exactly what the tc program redirects: a frame neither forwarded nor
// forwarded twice), a redirected frame keeps its length and carries Y → B
// with the TTL one lower, and anything else leaves the tc program as it
// came.
func FuzzFastpath(f *testing.F) {
	f.Add(udpFrame(macA, macP0, ipA, ipX, "seed"))
	f.Add(tcpFrame(macA, macP0, ipA, ipX, "seed"))
	f.Add(arpFrame(1, macA, ipA, [6]byte{}, ipX))
	f.Add(make([]byte, 14))
	fp := testFastpath(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 9000 {
			return
		}
		fast, rc, out, ok := runBoth(t, fp, b)
		if !ok {
			return
		}
		if fast != (rc == tcActRedirect) {
			t.Fatalf("socket filter says fast path %v, tc program returned %d", fast, int32(rc))
		}
		if !fast {
			if !bytes.Equal(out, b) {
				t.Fatal("a frame left to fwd was changed")
			}
			return
		}
		if len(out) != len(b) || !bytes.Equal(out[26:34], append(bytes.Clone(ipY), ipB...)) || out[22] != b[22]-1 {
			t.Fatalf("redirected frame wrong: %x", out[:34])
		}
	})
}
