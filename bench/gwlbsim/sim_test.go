package main

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	testLocal = netip.MustParseAddr("198.18.1.1")
	testApp   = netip.MustParseAddr("198.18.1.2")
	testCfg   = config{local: testLocal, appliance: testApp, endpointID: 0x0123456789abcdef, attachmentID: 0xfedcba9876543210}
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		if tr, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			tr.SetNetworkLayerForChecksum(ls[0].(gopacket.NetworkLayer))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tcp4(t testing.TB, src, dst string, sport, dport layers.TCPPort, payload string) []byte {
	return serialize(t, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)},
		&layers.TCP{SrcPort: sport, DstPort: dport, ACK: true, Window: 100}, gopacket.Payload(payload))
}

func udp6(t testing.TB, src, dst string, sport, dport layers.UDPPort) []byte {
	return serialize(t, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)},
		&layers.UDP{SrcPort: sport, DstPort: dport}, gopacket.Payload("six"))
}

// wrap runs encap on pkt as toAppliance does (read after room for the headers).
func wrap(t testing.TB, s *sim, pkt []byte) []byte {
	t.Helper()
	buf := make([]byte, s.overhead+len(pkt))
	copy(buf[s.overhead:], pkt)
	n, ok := s.encap(buf, len(pkt))
	if !ok {
		t.Fatalf("encap refused %x", pkt)
	}
	return buf[:n]
}

// TestEncap checks gwlbsim's frames byte by byte against what GWLB sends
// (the facts, written out here, not taken from fwd): outer IPv4 from the
// stand-in to the appliance with a right checksum, UDP to 6081 with
// checksum 0, GENEVE version 0 with the three class-0x0108 options and
// the inner packet's protocol type, 68 bytes in all before the packet; and
// gopacket's GENEVE decoder agrees.
func TestEncap(t *testing.T) {
	s := newSim(testCfg)
	for _, c := range []struct {
		name  string
		pkt   []byte
		proto uint16
	}{
		{"tcp4", tcp4(t, "198.18.0.2", "198.18.2.2", 40000, 5001, "data"), 0x0800},
		{"udp6", udp6(t, "2001:2::2", "2001:2:0:2::2", 5000, 53), 0x86dd},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := wrap(t, s, c.pkt)
			if len(f) != 68+len(c.pkt) || !bytes.Equal(f[68:], c.pkt) {
				t.Fatalf("got %d bytes, want 68 + the packet unchanged", len(f))
			}
			want := []byte{
				0x45, 0, byte(len(f) >> 8), byte(len(f)), f[4], f[5], 0x40, 0, 64, 17, f[10], f[11], 198, 18, 1, 1, 198, 18, 1, 2,
				f[20], f[21], 0x17, 0xc1, byte((len(f) - 20) >> 8), byte(len(f) - 20), 0, 0,
				0x08, 0, byte(c.proto >> 8), byte(c.proto), 0, 0, 0, 0,
				0x01, 0x08, 1, 2, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				0x01, 0x08, 2, 2, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
				0x01, 0x08, 3, 1, f[64], f[65], f[66], f[67],
			}
			if !bytes.Equal(f[:68], want) {
				t.Errorf("headers\n%x\nwant\n%x", f[:68], want)
			}
			pkt := gopacket.NewPacket(f, layers.LayerTypeIPv4, gopacket.Default)
			ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip == nil {
				t.Fatal("gopacket: no IPv4")
			}
			sum := ip.Checksum
			if err := ip.SerializeTo(gopacket.NewSerializeBuffer(), gopacket.SerializeOptions{ComputeChecksums: true}); err != nil || ip.Checksum != sum {
				t.Errorf("IPv4 checksum %#04x, want %#04x", sum, ip.Checksum)
			}
			g, _ := pkt.Layer(layers.LayerTypeGeneve).(*layers.Geneve)
			if g == nil {
				t.Fatalf("gopacket: no GENEVE: %v", pkt.ErrorLayer())
			}
			if len(g.Options) != 3 || uint16(g.Protocol) != c.proto || !bytes.Equal(g.LayerPayload(), c.pkt) {
				t.Errorf("gopacket: %d options, protocol %#x, payload %x", len(g.Options), uint16(g.Protocol), g.LayerPayload())
			}
		})
	}
}

// TestFlowCookie: a flow keeps its cookie and source port in both
// directions; another flow gets another; fragments of a datagram share one.
func TestFlowCookie(t *testing.T) {
	cookie := func(p []byte) uint32 {
		c, _, ok := flowCookie(p)
		if !ok {
			t.Fatalf("no cookie for %x", p)
		}
		return c
	}
	fwd := cookie(tcp4(t, "198.18.0.2", "198.18.2.2", 40000, 5001, "a"))
	if cookie(tcp4(t, "198.18.0.2", "198.18.2.2", 40000, 5001, "another segment")) != fwd {
		t.Error("a flow's packets got different cookies")
	}
	if cookie(tcp4(t, "198.18.2.2", "198.18.0.2", 5001, 40000, "")) != fwd {
		t.Error("the two directions got different cookies")
	}
	if cookie(tcp4(t, "198.18.0.2", "198.18.2.2", 40001, 5001, "a")) == fwd {
		t.Error("two flows got the same cookie")
	}
	if cookie(udp6(t, "2001:2::2", "2001:2:0:2::2", 5000, 53)) != cookie(udp6(t, "2001:2:0:2::2", "2001:2::2", 53, 5000)) {
		t.Error("IPv6: the two directions got different cookies")
	}
	first := tcp4(t, "198.18.0.2", "198.18.2.2", 40000, 5001, "a")
	later := bytes.Clone(first)
	first[6] |= 0x20 // MF
	later[7] = 10    // offset 80
	if cookie(first) != cookie(later) {
		t.Error("fragments of a datagram got different cookies")
	}
	for _, bad := range [][]byte{nil, {0x45}, make([]byte, 40), {0x4f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, _, ok := flowCookie(bad); ok {
			t.Errorf("cookie for %x", bad)
		}
	}
}

// TestCheck: what a correct appliance returns (outer addresses swapped,
// ports kept, the UDP payload unchanged) is taken; each fault is counted
// under its own name.
func TestCheck(t *testing.T) {
	s := newSim(testCfg)
	pkt := tcp4(t, "198.18.0.2", "198.18.2.2", 40000, 5001, "data")
	f := wrap(t, s, pkt)
	sport := be.Uint16(f[20:])
	payload := f[28:]
	from := netip.AddrPortFrom(testApp, sport)

	if inner, ok := s.check(from, payload); !ok || !bytes.Equal(inner, pkt) {
		t.Fatalf("correct return refused (%v) or inner %x", ok, inner)
	}
	changedOpt := bytes.Clone(payload)
	changedOpt[8+4]++ // the endpoint id
	changedInner := bytes.Clone(payload)
	changedInner[40+12]++ // the inner source address: another flow's cookie
	for _, c := range []struct {
		name    string
		from    netip.AddrPort
		payload []byte
		want    mismatch
	}{
		{"short", from, payload[:40], mShort},
		{"not ip", from, append(bytes.Clone(payload[:40]), 0x10, 0, 0), mShort},
		{"option changed", from, changedOpt, mOptions},
		{"inner changed", from, changedInner, mOptions},
		{"not swapped", netip.AddrPortFrom(testLocal, sport), payload, mSource},
		{"ports swapped", netip.AddrPortFrom(testApp, 6081), payload, mPort},
	} {
		before := s.c.mismatches[c.want].Load()
		if _, ok := s.check(c.from, c.payload); ok {
			t.Errorf("%s: taken", c.name)
		}
		if s.c.mismatches[c.want].Load() != before+1 {
			t.Errorf("%s: not counted as %s", c.name, mismatchNames[c.want])
		}
	}
	var out strings.Builder
	if !s.report(&out) || !strings.Contains(out.String(), "mismatch_udp_source_port_not_the_flows 1\n") ||
		!strings.Contains(out.String(), "example: geneve_options_differ") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--local", "2001:2::1"}, {"--appliance", "nonsense"}, {"--endpoint-id", "0x1ffffffffffffffff"}, {"--attachment-id", "x"}, {"--what"},
	} {
		var out, errs strings.Builder
		if code := run(args, &out, &errs); code != 2 || errs.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs.String())
		}
	}
}
