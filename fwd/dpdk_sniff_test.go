package fwd

// sniffOffload (gso.go) is what the DPDK backend has in place of the
// kernel's offload metadata; these tests need no DPDK.

import (
	"bytes"
	"strings"
	"testing"
)

// partial makes f's TCP/UDP checksum what a sender leaves for its NIC to
// finish: the folded pseudo-header sum.
func partial(f []byte) []byte {
	var p ippkt
	if etherType(f) == etherIPv6 {
		parseIPv6(f, &p)
	} else {
		parseIPv4(f, &p)
	}
	be.PutUint16(f[p.l4+l4CsumOff(p.proto):], csumFold(pseudo(f, &p, p.end-p.l4)))
	return f
}

func TestSniffOffload(t *testing.T) {
	big := strings.Repeat("x", 5000)
	for _, c := range []struct {
		name    string
		f       []byte
		min, in int // the smallest MTU of the ports, the ingress port's
		want    vnet
	}{
		{"valid TCP", tcpFrame(macA, macP0, ipA, ipX, "hello"), 1500, 1500, vnet{}},
		{"valid UDP", udpFrame(macA, macP0, ipA, ipX, "hello"), 1500, 1500, vnet{}},
		{"partial TCP", partial(tcpFrame(macA, macP0, ipA, ipX, "hello")), 1500, 1500, vnet{flags: vnetNeedsCsum, csumStart: 34, csumOffset: 16}},
		{"partial UDP", partial(udpFrame(macA, macP0, ipA, ipX, "hello")), 1500, 1500, vnet{flags: vnetNeedsCsum, csumStart: 34, csumOffset: 6}},
		{"partial TCPv6", partial(tcp6Frame(macA, macP0, ip6A, ip6X, "hello")), 1500, 1500, vnet{flags: vnetNeedsCsum, csumStart: 54, csumOffset: 16}},
		{"partial UDPv6", partial(udp6Frame(macA, macP0, ip6A, ip6X, "hello")), 1500, 1500, vnet{flags: vnetNeedsCsum, csumStart: 54, csumOffset: 6}},
		// 20 bytes of IP, 32 of TCP with timestamps: the sender's MSS at 1500.
		{"TCP super-frame", partial(tcpFrame(macA, macP0, ipA, ipX, big)), 1500, 1500, vnet{gsoType: gsoTCPv4, gsoSize: 1448}},
		{"TCPv6 super-frame", tcp6Frame(macA, macP0, ip6A, ip6X, big), 1500, 1500, vnet{gsoType: gsoTCPv6, gsoSize: 1440}},
		// A jumbo frame from a 9001 link: one segment of up to 8949 bytes,
		// which finish cuts to a 1500 egress port's size.
		{"TCP from a jumbo link", tcpFrame(macA, macP0, ipA, ipX, big), 1500, 9001, vnet{gsoType: gsoTCPv4, gsoSize: 8949}},
		// The same packet damaged on the way: cutting it would give its
		// segments valid checksums; it is left as it is (and refused as
		// longer than the egress MTU).
		{"damaged TCP from a jumbo link", func() []byte { f := tcpFrame(macA, macP0, ipA, ipX, big); f[len(f)-1] ^= 1; return f }(), 1500, 9001, vnet{}},
		{"TCP longer than no known MTU", tcpFrame(macA, macP0, ipA, ipX, big), 0, 0, vnet{}},
		{"UDP longer than the MTU", udpFrame(macA, macP0, ipA, ipX, big), 1500, 1500, vnet{}},
		{"TCP at the MTU", tcpFrame(macA, macP0, ipA, ipX, big[:1448]), 1500, 1500, vnet{}},
	} {
		if got := sniffOffload(c.f, c.min, c.in); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// A valid packet whose checksum field happens to equal the pseudo-header
// sum is left alone: the heuristic checks the full sum before it calls a
// checksum partial.
func TestSniffOffloadValidLookalike(t *testing.T) {
	f := tcpFrame(macA, macP0, ipA, ipX, "hello!!!")
	var p ippkt
	parseIPv4(f, &p)
	want := csumFold(pseudo(f, &p, p.end-p.l4))
	// Make the payload sum to what turns the valid checksum into want:
	// the field is then both the pseudo-header sum and right.
	ck := p.l4 + 16
	old := be.Uint16(f[ck:])
	be.PutUint16(f[ck:], want)
	s := uint32(be.Uint16(f[p.end-2:])) + uint32(old) + uint32(^want)
	be.PutUint16(f[p.end-2:], csumFold(s))
	if errs := sumErrors(f); len(errs) != 0 {
		t.Fatalf("the lookalike is not valid: %v", errs)
	}
	if got := sniffOffload(f, 1500, 1500); got != (vnet{}) {
		t.Fatalf("got %+v for a valid packet, want no metadata", got)
	}
}

// Through the datapath: a partial checksum is finished, a super-frame with
// no metadata is forwarded as segments that fit the egress MTU, with valid
// checksums, and captured the same way.
func TestSniffedFramesForwarded(t *testing.T) {
	h := newHarness(t, true)
	h.d.SetMTU(0, 1500)
	h.d.SetMTU(1, 1500)
	f := partial(tcpFrame(macA, macP0, ipA, ipX, "hello"))
	if out := h.d.HandleMeta(0, f, len(f), sniffOffload(f, 1500, 1500)); out != 1 || h.d.outGSO {
		t.Fatalf("partial: got port %d, gso %v; want 1, false", out, h.d.outGSO)
	}
	checkSums(t, f)

	payload := bytes.Repeat([]byte("0123456789"), 500)
	f = partial(tcpFrame(macA, macP0, ipA, ipX, string(payload)))
	out := h.d.HandleMeta(0, f, len(f), sniffOffload(f, 1500, 1500))
	if out != 1 || !h.d.outGSO {
		t.Fatalf("super-frame: got port %d, gso %v; want 1, true", out, h.d.outGSO)
	}
	g := &h.d.plan
	if g.n != 4 || g.mss != 1448 {
		t.Fatalf("super-frame plan: %d segments of %d, want 4 of 1448", g.n, g.mss)
	}
	var got []byte
	seg := make([]byte, 2048)
	for k := 0; k < g.n; k++ {
		n := g.build(f, k, seg)
		if n > etherHdrLen+1500 {
			t.Fatalf("segment %d: %d bytes, more than the MTU", k, n)
		}
		checkSums(t, seg[:n])
		wantAddrs(t, seg[:n], ipY, ipB)
		got = append(got, seg[g.hl:n]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the segments do not carry the super-frame's payload")
	}
	h.d.End()
	recs := h.drain(t)
	if len(recs) != 2+2*g.n { // capture: both, of the small frame and of the segments
		t.Fatalf("%d records captured, want %d", len(recs), 2+2*g.n)
	}
	for i, r := range recs {
		if len(r.Data) > etherHdrLen+1500 {
			t.Errorf("record %d: %d bytes, more than the MTU", i, len(r.Data))
		}
		checkSums(t, r.Data)
	}
}

func TestSniffOffloadAllocs(t *testing.T) {
	f := partial(tcpFrame(macA, macP0, ipA, ipX, strings.Repeat("x", 1000)))
	if n := testing.AllocsPerRun(100, func() { sniffOffload(f, 1500, 1500) }); n != 0 {
		t.Fatalf("%v allocations per frame, want 0", n)
	}
}

// A TCP frame from a jumbo link going out on a 1500-byte one is cut to
// the egress port's MSS.
func TestSniffedJumboToSmallerMTU(t *testing.T) {
	h := newHarness(t, false)
	h.d.SetMTU(0, 9001)
	h.d.SetMTU(1, 1500)
	f := tcpFrame(macA, macP0, ipA, ipX, strings.Repeat("j", 8000))
	if out := h.d.HandleMeta(0, f, len(f), sniffOffload(f, 1500, 9001)); out != 1 || !h.d.outGSO {
		t.Fatalf("got port %d, gso %v; want 1, true", out, h.d.outGSO)
	}
	if g := &h.d.plan; g.n != 6 || g.mss != 1448 {
		t.Fatalf("plan: %d segments of %d, want 6 of 1448", g.n, g.mss)
	}
}
