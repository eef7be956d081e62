package e2e

// The kernel fast path (fwd.fastpath: kernel): rules of capture none
// forwarded by fwd's tc program, the others through fwd, on hosts with
// default offloads; and frames crafted to test what the fast path must
// leave to fwd (TTL 1, IP options, link-layer broadcast, a foreign MAC, a
// fragment) and what it must rewrite exactly (checksums, a zero UDP
// checksum, TTL, MACs), checked at B by code written from the RFCs.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/fmcap/fmcap/internal/ctl"
)

const fastpathSetting = "  fastpath: kernel\n"

func TestFastPathOffloads(t *testing.T) {
	for _, gro := range []bool{false, true} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			tp := newTopoWith(t, topoOpts{offloads: true, fwdGRO: gro})
			s := offloadSuite(t, tp, bin("fwd"), "afpacket", nil, [2]string{tp.f0, tp.f1}, fastpathSetting)
			// The none rule's 100 MB went through the kernel: its data
			// frames are super-frames of at most 64 KiB, so 1 600 or more,
			// of which the first few may go through fwd while a neighbor
			// is being resolved; 1 000 is most of the transfer with room
			// for that on a loaded machine.
			if s.KernelForwarded < 1000 {
				t.Fatalf("the kernel fast path forwarded %d frames, want the none rule's transfer (≥ 1000)", s.KernelForwarded)
			}
			for _, r := range s.Rules {
				if r.ID == 10 && r.FwdPackets < 1600 {
					t.Errorf("rule 10 (none) counted %d frames A→B", r.FwdPackets)
				}
			}
			t.Logf("kernel fast path: %d of %d frames forwarded", s.KernelForwarded, s.Forwarded)
		})
	}
}

// ifMAC is a device's MAC in a namespace.
func ifMAC(t *testing.T, ns, dev string) net.HardwareAddr {
	t.Helper()
	var l []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(run(t, "ip", "-n", ns, "-j", "link", "show", "dev", dev), &l); err != nil || len(l) != 1 {
		t.Fatalf("ip link show %s: %v", dev, err)
	}
	m, err := net.ParseMAC(l[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFastPathFrames(t *testing.T) {
	tp := newTopoWith(t, topoOpts{offloads: true})
	ring := makeRing(t, "64MiB")
	cfg := offloadConfig(t, ring, "afpacket", nil, [2]string{tp.f0, tp.f1}, fastpathSetting)
	tp.start(tp.nsF, nil, bin("fwd"), "--config", cfg)
	waitControl(t, cfg)
	x := net.IPv4(198, 18, 1, 10).To4() // rule 10, capture none
	y := net.IPv4(198, 18, 2, 10).To4()
	// Both neighbors resolved (the ping goes through fwd), then the rule
	// in the kernel: a datagram sent until the fast path has taken one
	// (the map is synced at fwd's housekeeping, which a loaded machine
	// can delay).
	sh(t, "ip", "netns", "exec", tp.nsA, "ping", "-c", "2", "-i", "0.2", "-W", "5", x.String())
	for i := 0; stats(t, cfg).KernelForwarded == 0; i++ {
		if i == 100 {
			t.Fatal("the kernel fast path forwarded nothing in 20 s")
		}
		_, src := tp.role(tp.nsA, "udp-source", net.JoinHostPort(x.String(), "7999"), "1")
		line(t, src, "udp-source")
		time.Sleep(200 * time.Millisecond)
	}
	aMAC, fMAC := ifMAC(t, tp.nsA, tp.a0), ifMAC(t, tp.nsF, tp.f0)
	f1MAC, bMAC := ifMAC(t, tp.nsF, tp.f1), ifMAC(t, tp.nsB, tp.b0)

	type frame struct {
		name string
		dst  net.HardwareAddr
		ttl  uint8
		opts bool
		frag bool
		zero bool // UDP checksum 0
		tcp  bool
	}
	frames := []frame{
		{name: "plain", dst: fMAC, ttl: 64},
		{name: "zero-checksum", dst: fMAC, ttl: 64, zero: true},
		{name: "tcp", dst: fMAC, ttl: 64, tcp: true},
		{name: "fragment", dst: fMAC, ttl: 64, frag: true},
		{name: "ttl1", dst: fMAC, ttl: 1},
		{name: "options", dst: fMAC, ttl: 64, opts: true},
		{name: "broadcast", dst: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ttl: 64},
		{name: "foreign", dst: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}, ttl: 64},
	}
	pcapFile := filepath.Join(t.TempDir(), "frames.pcap")
	f, err := os.Create(pcapFile)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		eth := &layers.Ethernet{SrcMAC: aMAC, DstMAC: fr.dst, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: fr.ttl, Id: uint16(100 + i), SrcIP: net.IPv4(198, 18, 1, 2).To4(), DstIP: x, Protocol: layers.IPProtocolUDP}
		if fr.opts {
			ip.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}} // record route
		}
		if fr.frag {
			ip.Flags = layers.IPv4MoreFragments
		}
		payload := gopacket.Payload(fmt.Sprintf("fastpath frame %d %s", i, fr.name))
		buf := gopacket.NewSerializeBuffer()
		var err error
		if fr.tcp {
			ip.Protocol = layers.IPProtocolTCP
			tcp := &layers.TCP{SrcPort: 40000, DstPort: 7001, Seq: 1000, SYN: true, Window: 1000}
			tcp.SetNetworkLayerForChecksum(ip)
			err = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp)
		} else {
			udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(7000 + i)}
			udp.SetNetworkLayerForChecksum(ip)
			err = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, payload)
		}
		if err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if fr.zero {
			binary.BigEndian.PutUint16(b[14+20+6:], 0)
		}
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(b), Length: len(b)}, b); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	before := stats(t, cfg)
	file, stop := tp.tcpdump(tp.nsB, tp.b0)
	_, inj := tp.role(tp.nsA, "inject", pcapFile, tp.a0)
	if got := line(t, inj, "inject"); got != fmt.Sprint(len(frames)) {
		t.Fatalf("injected %s frames, want %d", got, len(frames))
	}
	want := map[string]uint64{"ttl_expired": 1, "ip_options": 1, "link_broadcast_or_multicast": 1, "foreign_mac": 1}
	after := waitStats(t, cfg, func(s ctl.Stats) bool {
		for r, n := range want {
			if s.Drops[r]-before.Drops[r] < n {
				return false
			}
		}
		return s.KernelForwarded-before.KernelForwarded >= 3
	})
	stop()
	time.Sleep(1200 * time.Millisecond) // the fast path's counters are collected every second
	after = stats(t, cfg)
	for r, n := range want {
		// A's stack multicasts too (IPv6 neighbor discovery, MLD): more
		// link-layer multicast than the one broadcast frame may come.
		if d := after.Drops[r] - before.Drops[r]; d != n && !(r == "link_broadcast_or_multicast" && d > n) {
			t.Errorf("%s: fwd dropped %d, want %d", r, d, n)
		}
	}
	// plain, zero-checksum and the SYN; B's RST to the SYN comes back
	// through the fast path too.
	if d := after.KernelForwarded - before.KernelForwarded; d != 3 && d != 4 {
		t.Errorf("the kernel fast path forwarded %d frames, want 3 (and B's RST: 4)", d)
	}

	// What reached B: the four frames fwd forwards, rewritten.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		d, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if len(d) < 34 || binary.BigEndian.Uint16(d[12:]) != 0x0800 || !net.IP(d[26:30]).Equal(y) {
			continue
		}
		ihl := int(d[14]&0x0f) * 4
		var name string
		switch {
		case d[23] == 6:
			name = "tcp"
		case binary.BigEndian.Uint16(d[20:])&0x2000 != 0:
			name = "fragment"
		default:
			port := int(binary.BigEndian.Uint16(d[14+ihl+2:]))
			if port-7000 >= 0 && port-7000 < len(frames) {
				name = frames[port-7000].name
			}
		}
		seen[name] = true
		if net.HardwareAddr(d[0:6]).String() != bMAC.String() || net.HardwareAddr(d[6:12]).String() != f1MAC.String() {
			t.Errorf("%s: MACs %x → %x, want %s → %s", name, d[6:12], d[0:6], f1MAC, bMAC)
		}
		if d[22] != 63 {
			t.Errorf("%s: TTL %d, want 63", name, d[22])
		}
		if !net.IP(d[30:34]).Equal(net.IPv4(198, 18, 2, 2)) {
			t.Errorf("%s: destination %s, want B", name, net.IP(d[30:34]))
		}
		if ones(d[14:14+ihl], 0) != 0xffff {
			t.Errorf("%s: bad IPv4 header checksum", name)
		}
		if name == "fragment" {
			continue
		}
		l4 := d[14+ihl : 14+int(binary.BigEndian.Uint16(d[16:]))]
		pseudo := uint32(ones(d[26:34], 0)) + uint32(d[23]) + uint32(len(l4))
		sum := ones(l4, pseudo)
		switch {
		case name == "zero-checksum":
			if c := binary.BigEndian.Uint16(l4[6:]); c != 0 {
				t.Errorf("zero-checksum: UDP checksum %#04x at B, want 0 (none)", c)
			}
		case sum != 0xffff:
			t.Errorf("%s: bad %s checksum at B", name, map[bool]string{true: "TCP", false: "UDP"}[name == "tcp"])
		}
	}
	for _, n := range []string{"plain", "zero-checksum", "tcp", "fragment"} {
		if !seen[n] {
			t.Errorf("%s: not received at B", n)
		}
	}
	for _, n := range []string{"ttl1", "options", "broadcast", "foreign"} {
		if seen[n] {
			t.Errorf("%s: forwarded to B, want dropped", n)
		}
	}
}
