package fwd

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/fmcap/fmcap/shmring"
)

// superTCP is a TCP super-frame from A to X as a sender with TSO hands it
// to its NIC: one IP packet of len(payload) bytes of data with the IP
// length of the whole, and a partial checksum (the folded pseudo-header
// sum) in the TCP checksum field, with its virtio_net_hdr.
func superTCP(t testing.TB, v6 bool, payload []byte, mss int, flags uint8) ([]byte, vnet) {
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 0xfffff000, Ack: 9, ACK: true, Window: 500,
		PSH: flags&tcpPSH != 0, FIN: flags&tcpFIN != 0, CWR: flags&tcpCWR != 0}
	var f []byte
	if v6 {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: ip6A, DstIP: ip6X}
		tcp.SetNetworkLayerForChecksum(ip6)
		e := eth(macA, macP0)
		e.EthernetType = layers.EthernetTypeIPv6
		f = build(e, ip6, tcp, gopacket.Payload(payload))
	} else {
		ip4 := ip(ipA, ipX, layers.IPProtocolTCP)
		ip4.Id = 0xfff0
		ip4.Flags = layers.IPv4DontFragment
		tcp.SetNetworkLayerForChecksum(ip4)
		f = build(eth(macA, macP0), ip4, tcp, gopacket.Payload(payload))
	}
	var p ippkt
	typ := uint8(gsoTCPv4)
	if v6 {
		typ = gsoTCPv6
		if parseIPv6(f, &p) != rOK {
			t.Fatal("bad IPv6 super-frame")
		}
	} else if parseIPv4(f, &p) != rOK {
		t.Fatal("bad IPv4 super-frame")
	}
	seedPartial(f, &p, 16)
	return f, vnet{flags: vnetNeedsCsum, gsoType: typ, hdrLen: uint16(p.l4 + 20), gsoSize: uint16(mss), csumStart: uint16(p.l4), csumOffset: 16}
}

// segmentsOf decodes captured segments with gopacket (not fwd's parser)
// and checks each: checksums right, lengths consistent, within mtu.
func segmentsOf(t *testing.T, recs []rec, mtu int) (payload []byte, segs []*layers.TCP) {
	t.Helper()
	for i, r := range recs {
		if len(r.Data)-etherHdrLen > mtu {
			t.Fatalf("segment %d: %d bytes, MTU %d", i, len(r.Data), mtu)
		}
		if errs := sumErrors(r.Data); len(errs) != 0 {
			t.Fatalf("segment %d: %v", i, errs)
		}
		pk := gopacket.NewPacket(r.Data, layers.LayerTypeEthernet, gopacket.Default)
		tl, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tl == nil {
			t.Fatalf("segment %d: no TCP layer: %v", i, pk)
		}
		if l4 := pk.Layer(layers.LayerTypeIPv4); l4 != nil {
			ip4 := l4.(*layers.IPv4)
			if int(ip4.Length) != len(r.Data)-etherHdrLen {
				t.Fatalf("segment %d: IP length %d, frame %d", i, ip4.Length, len(r.Data))
			}
		}
		payload = append(payload, tl.Payload...)
		segs = append(segs, tl)
	}
	return payload, segs
}

func TestSuperFrameForwardedWholeCapturedAsSegments(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, v6 := range []bool{false, true} {
		for _, n := range []int{1, 1447, 1448, 1449, 20000, 64000} {
			h := newHarness(t, true)
			h.d.SetMTU(0, 1500)
			h.d.SetMTU(1, 1500)
			h.setMode(t, 1, ModeBoth)
			h.setMode(t, 3, ModeBoth)
			payload := make([]byte, n)
			rng.Read(payload)
			mss := 1448
			if v6 {
				mss = 1440 // what the sender's MSS is over IPv6 at MTU 1500
			}
			f, m := superTCP(t, v6, payload, mss, tcpPSH|tcpFIN|tcpCWR)
			out := h.d.HandleMeta(0, f, len(f), m)
			h.d.End()
			if out != 1 {
				t.Fatalf("v6=%v %d bytes: not forwarded (counters %v)", v6, n, h.d.c.reasons)
			}
			// Sent whole, with metadata asking for the segmentation, and
			// the checksum field seeded for the new addresses.
			if !h.d.outGSO || h.d.outMeta.gsoType != m.gsoType || h.d.outMeta.flags != vnetNeedsCsum {
				t.Fatalf("out metadata %+v", h.d.outMeta)
			}
			// The sender's 1448, or less where the headers and 1448 do not fit the MTU.
			if want := min(1448, 1500-(h.d.plan.hl-etherHdrLen)); int(h.d.outMeta.gsoSize) != want {
				t.Fatalf("segment size %d, want %d", h.d.outMeta.gsoSize, want)
			}
			var p ippkt
			if v6 {
				parseIPv6(f, &p)
			} else {
				parseIPv4(f, &p)
			}
			if got, want := be.Uint16(f[p.l4+16:]), csumFold(pseudo(f, &p, p.end-p.l4)); got != want {
				t.Fatalf("partial checksum %#x, want %#x", got, want)
			}
			recs := h.drain(t)
			var in, eg []rec
			for _, r := range recs {
				if r.Dir == shmring.DirIngress {
					in = append(in, r)
				} else {
					eg = append(eg, r)
				}
			}
			for _, side := range [][]rec{in, eg} {
				got, segs := segmentsOf(t, side, 1500)
				if !bytes.Equal(got, payload) {
					t.Fatalf("v6=%v %d bytes: segments carry %d bytes, not the payload", v6, n, len(got))
				}
				want := (n + int(h.d.plan.mss) - 1) / int(h.d.plan.mss)
				if len(segs) != want {
					t.Fatalf("v6=%v %d bytes: %d segments, want %d", v6, n, len(segs), want)
				}
				seq := uint32(0xfffff000)
				for i, s := range segs {
					if s.Seq != seq {
						t.Fatalf("segment %d: seq %#x, want %#x", i, s.Seq, seq)
					}
					seq += uint32(len(s.Payload))
					last := i == len(segs)-1
					if s.FIN != last || s.PSH != last || s.CWR != (i == 0) {
						t.Fatalf("segment %d of %d: FIN %v PSH %v CWR %v", i, len(segs), s.FIN, s.PSH, s.CWR)
					}
				}
				if !v6 {
					for i, r := range side {
						if id := binary.BigEndian.Uint16(r.Data[18:]); id != uint16(0xfff0+i) {
							t.Fatalf("segment %d: IP id %#x", i, id)
						}
					}
				}
			}
			// Wire lengths are the segments'.
			for _, r := range recs {
				if int(r.WireLen) != len(r.Data) {
					t.Fatalf("record wire length %d, %d bytes", r.WireLen, len(r.Data))
				}
			}
		}
	}
}

func TestSuperFrameKeep(t *testing.T) {
	h := newHarness(t, true)
	h.d.keepGSO = true
	h.setMode(t, 1, ModeIngress)
	payload := bytes.Repeat([]byte("keep"), 5000)
	f, m := superTCP(t, false, payload, 1448, 0)
	if out := h.d.HandleMeta(0, f, len(f), m); out != 1 {
		t.Fatal("not forwarded")
	}
	h.d.End()
	recs := h.drain(t)
	if len(recs) != 1 || int(recs[0].WireLen) != len(f) || len(recs[0].Data) != len(f) {
		t.Fatalf("keep: %d records", len(recs))
	}
	if errs := sumErrors(recs[0].Data); len(errs) != 0 {
		t.Fatalf("kept super-frame: %v", errs)
	}
}

func TestPartialChecksumFinished(t *testing.T) {
	h := newHarness(t, true)
	h.setMode(t, 1, ModeBoth)
	f, _ := superTCP(t, false, []byte("a small segment with a partial checksum"), 1448, 0)
	m := vnet{flags: vnetNeedsCsum, csumStart: 34, csumOffset: 16}
	out := h.d.HandleMeta(0, f, len(f), m)
	h.d.End()
	if out != 1 || h.d.outGSO {
		t.Fatalf("out %d gso %v", out, h.d.outGSO)
	}
	checkSums(t, f)
	for _, r := range h.drain(t) {
		checkSums(t, r.Data)
	}
}

func TestBadOffloadMetadata(t *testing.T) {
	h := newHarness(t, false)
	f, m := superTCP(t, false, make([]byte, 5000), 1448, 0)
	for _, tc := range []struct {
		name string
		m    func(v vnet) vnet
	}{
		{"TCPv6 type on IPv4", func(v vnet) vnet { v.gsoType = gsoTCPv6; return v }},
		{"UFO", func(v vnet) vnet { v.gsoType = gsoUDP; return v }},
		{"unknown type", func(v vnet) vnet { v.gsoType = 9; return v }},
		{"segment size 0", func(v vnet) vnet { v.gsoSize = 0; return v }},
		{"UDP_L4 on TCP", func(v vnet) vnet { v.gsoType = gsoUDPL4; return v }},
	} {
		before := h.d.c.reasons[rBadGSO]
		g := append([]byte(nil), f...)
		if out := h.d.HandleMeta(0, g, len(g), tc.m(m)); out != -1 {
			t.Errorf("%s: forwarded", tc.name)
		}
		if h.d.c.reasons[rBadGSO] != before+1 {
			t.Errorf("%s: not counted as %s", tc.name, reasonNames[rBadGSO])
		}
	}
	// Longer than the egress MTU without metadata: dropped, counted.
	h.d.SetMTU(1, 1500)
	g := append([]byte(nil), f...)
	if out := h.d.Handle(0, g, len(g)); out != -1 || h.d.c.reasons[rTooBig] != 1 {
		t.Fatalf("oversized frame: out %d, counted %d", out, h.d.c.reasons[rTooBig])
	}
}

func TestLinkLayerAndIPOptionDrops(t *testing.T) {
	h := newHarness(t, false)
	good := tcpFrame(macA, macP0, ipA, ipX, "payload")
	withOpt := func(opt []byte) []byte {
		ip4 := ip(ipA, ipX, layers.IPProtocolTCP)
		ip4.Options = []layers.IPv4Option{{OptionType: opt[0], OptionLength: opt[1], OptionData: opt[2:]}}
		tcp := &layers.TCP{SrcPort: 1, DstPort: 2, Window: 9}
		tcp.SetNetworkLayerForChecksum(ip4)
		return build(eth(macA, macP0), ip4, tcp, gopacket.Payload("x"))
	}
	rr := []byte{7, 7, 4, 0, 0, 0, 0}         // record route, one empty slot
	lsrr := []byte{0x83, 7, 4, 198, 18, 2, 2} // loose source route via B
	ssrr := []byte{0x89, 7, 4, 198, 18, 2, 2} // strict source route
	ts := []byte{68, 8, 5, 0, 0, 0, 0, 0}     // timestamp
	for _, tc := range []struct {
		name  string
		frame []byte
		want  reason
	}{
		{"broadcast", append(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, good[6:12]...), good[12:]...), rL2Multicast},
		{"multicast", append(append([]byte{0x01, 0, 0x5e, 0, 0, 1}, good[6:12]...), good[12:]...), rL2Multicast},
		{"another host's MAC", append(append([]byte{0x02, 9, 9, 9, 9, 9}, good[6:12]...), good[12:]...), rForeignMAC},
		{"record route", withOpt(rr), rIPOptions},
		{"timestamp", withOpt(ts), rIPOptions},
		{"loose source route", withOpt(lsrr), rSourceRoute},
		{"strict source route", withOpt(ssrr), rSourceRoute},
	} {
		before := h.d.c.reasons[tc.want]
		if out, _ := h.in(0, tc.frame); out != -1 {
			t.Errorf("%s: forwarded", tc.name)
		}
		if h.d.c.reasons[tc.want] != before+1 {
			t.Errorf("%s: %s not counted (counters %v)", tc.name, reasonNames[tc.want], h.d.c.reasons)
		}
	}
	// ip_options: pass forwards the other options, never a source route.
	tb := h.d.Table()
	for i := range tb.rules {
		tb.rules[i].ipOptions = true
	}
	if out, _ := h.in(0, withOpt(rr)); out != 1 {
		t.Error("record route with ip_options: pass: not forwarded")
	}
	if out, _ := h.in(0, withOpt(lsrr)); out != -1 {
		t.Error("source route with ip_options: pass: forwarded")
	}
}

// FuzzSuperFrame feeds random metadata and frames to the super-frame path:
// no panic, and nothing forwarded longer than the MTU unless its metadata
// has it segmented, each segment of which then fits.
func FuzzSuperFrame(f *testing.F) {
	for _, n := range []int{0, 100, 3000, 40000} {
		fr, m := superTCP(f, n%2 == 1, make([]byte, n), 1448, tcpFIN)
		b := make([]byte, vnetLen)
		m.encode(b)
		f.Add(b, fr)
	}
	h := newHarness(f, true)
	h.d.SetMTU(0, 1500)
	h.d.SetMTU(1, 1500)
	h.setMode(f, 1, ModeBoth)
	seg := make([]byte, maxSuper+64)
	f.Fuzz(func(t *testing.T, meta, frame []byte) {
		if len(meta) < vnetLen || len(frame) > maxSuper {
			return
		}
		var m vnet
		m.decode(meta)
		fr := append([]byte(nil), frame...)
		if len(fr) >= 6 {
			copy(fr, macP0[:]) // reach the routing path
		}
		out := h.d.HandleMeta(0, fr, len(fr), m)
		h.d.End()
		h.drain(t)
		if out < 0 || out > 1 {
			return
		}
		if !h.d.outGSO {
			if len(fr)-etherHdrLen > 1500 {
				t.Fatalf("forwarded %d bytes without segmentation", len(fr))
			}
			return
		}
		g := h.d.plan
		for k := 0; k < g.n; k++ {
			if n := g.build(fr, k, seg); n-etherHdrLen > 1500 {
				t.Fatalf("segment %d of %d: %d bytes", k, g.n, n)
			}
		}
	})
}

// BenchmarkSuperFrame is the cost of one 64 KiB TCP super-frame through the
// datapath: rewrite, and the capture copies cut into 45 on-wire segments
// each, checksummed, into a real ring that another goroutine drains (as
// the writer would).
func BenchmarkSuperFrame(b *testing.B) {
	for _, mode := range []Mode{ModeNone, ModeIngress, ModeBoth} {
		b.Run(mode.String(), func(b *testing.B) {
			h := newHarnessRing(b, true, 64<<20)
			if err := h.ring.Prefault(); err != nil { // as fwd does: no first-touch faults in the figure
				b.Fatal(err)
			}
			h.d.SetMTU(0, 1500)
			h.d.SetMTU(1, 1500)
			h.setMode(b, 1, mode)
			stopConsumer := h.consume()
			payload := make([]byte, 65000)
			rand.New(rand.NewSource(2)).Read(payload)
			tmpl, m := superTCP(b, false, payload, 1448, 0)
			f := make([]byte, len(tmpl))
			b.SetBytes(int64(len(tmpl)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.d.Begin(h.d.now)
				copy(f, tmpl)
				if h.d.HandleMeta(0, f, len(f), m) != 1 {
					b.Fatal("not forwarded")
				}
				h.d.End()
			}
			b.StopTimer()
			stopConsumer()
			b.ReportMetric(float64(h.d.c.captureDrops)/float64(b.N), "capture-drops/op")
		})
	}
}

var _ = net.IPv4len

func TestOffloadAndOptionSettings(t *testing.T) {
	cfg := strings.Replace(testConfig, "target: 198.18.2.2, capture: both}", "target: 198.18.2.2, capture: both, ip_options: pass}", 1)
	if cfg == testConfig {
		t.Fatal("test config has no rule 1 to change")
	}
	_, _, rules, err := parseConfig("t.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if !rules[0].IPOptions || (len(rules) > 1 && rules[1].IPOptions) {
		t.Fatalf("ip_options: pass on the first rule only: %+v", rules)
	}
	for _, bad := range []string{
		strings.Replace(testConfig, "target: 198.18.2.2, capture: both}", "target: 198.18.2.2, capture: both, ip_options: maybe}", 1),
		strings.Replace(testConfig, "fwd:\n", "fwd:\n  capture_gso: sometimes\n", 1),
	} {
		if _, _, _, err := parseConfig("t.yaml", []byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		} else if !strings.Contains(err.Error(), "t.yaml:") {
			t.Errorf("error without its line: %v", err)
		}
	}
	c, _, _, err := parseConfig("t.yaml", []byte(strings.Replace(testConfig, "fwd:\n", "fwd:\n  capture_gso: keep\n", 1)))
	if err != nil || c.Fwd.CaptureGSO != "keep" {
		t.Fatalf("capture_gso: keep: %v %+v", err, c)
	}
}

func TestTooBigAnswered(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		h := newHarness(t, false)
		h.d.SetMTU(1, 1500)
		var f []byte
		if v6 {
			f = tcp6Frame(macA, macP0, ip6A, ip6X, strings.Repeat("y", 3000))
		} else {
			ip4 := ip(ipA, ipX, layers.IPProtocolTCP)
			ip4.Flags = layers.IPv4DontFragment
			tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, ACK: true, Window: 9}
			tcp.SetNetworkLayerForChecksum(ip4)
			f = build(eth(macA, macP0), ip4, tcp, gopacket.Payload(strings.Repeat("y", 3000)))
		}
		for i := 0; i < 3*tooBigBurst; i++ {
			if out, _ := h.in(0, f); out != -1 {
				t.Fatalf("v6=%v: a packet longer than the egress MTU was forwarded", v6)
			}
		}
		if got := h.d.c.reasons[rTooBig]; got != 3*tooBigBurst {
			t.Fatalf("v6=%v: %d counted as larger_than_mtu, want %d", v6, got, 3*tooBigBurst)
		}
		if len(h.tx.sent) != tooBigBurst || h.d.c.tooBigSent != tooBigBurst {
			t.Fatalf("v6=%v: %d messages sent for %d packets, want the burst limit %d", v6, len(h.tx.sent), 3*tooBigBurst, tooBigBurst)
		}
		m := h.tx.sent[0]
		if m.port != 0 {
			t.Fatalf("sent on port %d, want the sender's port 0", m.port)
		}
		pk := gopacket.NewPacket(m.frame, layers.LayerTypeEthernet, gopacket.Default)
		if v6 {
			i6, _ := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			ic, _ := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if i6 == nil || ic == nil || ic.TypeCode.Type() != icmp6TooBig || !i6.SrcIP.Equal(ip6X) || !i6.DstIP.Equal(ip6A) {
				t.Fatalf("packet too big: %v", pk)
			}
			if mtu := be.Uint32(ic.Payload[0:4]); mtu != 1500 {
				t.Fatalf("packet too big: MTU %d", mtu)
			}
			var p ippkt
			if parseIPv6(m.frame, &p) != rOK || csum(m.frame[p.l4:p.end], pseudoSum6(m.frame, &p)) != 0 {
				t.Fatal("packet too big: bad ICMPv6 checksum")
			}
			if len(m.frame)-etherHdrLen > minMTU6 {
				t.Fatalf("packet too big is %d bytes", len(m.frame))
			}
		} else {
			i4, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			ic, _ := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if i4 == nil || ic == nil || ic.TypeCode.Type() != icmpUnreach || ic.TypeCode.Code() != 4 || !i4.SrcIP.Equal(ipX) || !i4.DstIP.Equal(ipA) {
				t.Fatalf("fragmentation needed: %v", pk)
			}
			if ic.Seq != 1500 { // gopacket reads bytes 6-7 as the sequence number
				t.Fatalf("fragmentation needed: next-hop MTU %d", ic.Seq)
			}
			if csum(m.frame[14:34], 0) != 0 || csum(m.frame[34:], 0) != 0 {
				t.Fatal("fragmentation needed: bad checksum")
			}
			if !bytes.Equal(m.frame[42:42+28], f[14:14+28]) {
				t.Fatal("fragmentation needed: the quote is not the packet's header and first 8 bytes")
			}
		}
		if !bytes.Equal(m.frame[0:6], macA[:]) || !bytes.Equal(m.frame[6:12], macP0[:]) {
			t.Fatal("not addressed back to the sender's MAC")
		}
		// The next interval allows another burst.
		h.d.Begin(h.d.now + int64(time.Second))
		h.in(0, f)
		if len(h.tx.sent) != tooBigBurst+1 {
			t.Fatalf("after housekeeping: %d messages", len(h.tx.sent))
		}
	}
	// Without DF an IPv4 packet is dropped and counted only.
	h := newHarness(t, false)
	h.d.SetMTU(1, 1500)
	h.in(0, tcpFrame(macA, macP0, ipA, ipX, strings.Repeat("y", 3000)))
	if len(h.tx.sent) != 0 || h.d.c.reasons[rTooBig] != 1 {
		t.Fatalf("no DF: %d messages, %d counted", len(h.tx.sent), h.d.c.reasons[rTooBig])
	}
}
