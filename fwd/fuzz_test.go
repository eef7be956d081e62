package fwd

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// transplant readdresses an IPv4 frame from A to X (so that it meets rule
// 1) and makes its checksums right from scratch, as a sender would. Frames
// that are not IPv4 are returned unchanged.
func transplant(f []byte) []byte {
	var p ippkt
	if etherType(f) != etherIPv4 || parseIPv4(f, &p) != rOK {
		return f
	}
	copy(f[0:6], macP0[:]) // addressed to fwd's port, as a routed frame is
	copy(f[p.ip+12:], ipA)
	copy(f[p.ip+16:], ipX)
	f[p.ip+10], f[p.ip+11] = 0, 0
	be.PutUint16(f[p.ip+10:], csum(f[p.ip:p.ip+p.ihl], 0))
	if !p.frag && p.l4 != 0 {
		completeL4(f)
	}
	return f
}

// corpus is every Ethernet frame of the real captures in testdata/.
func corpus(t testing.TB) [][]byte {
	var frames [][]byte
	files, _ := filepath.Glob("../testdata/*.pcap*")
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var read func() ([]byte, error)
		var link layers.LinkType
		if filepath.Ext(name) == ".pcapng" {
			r, err := pcapgo.NewNgReader(fh, pcapgo.DefaultNgReaderOptions)
			if err != nil {
				t.Fatal(err)
			}
			link = r.LinkType()
			read = func() ([]byte, error) { b, _, err := r.ReadPacketData(); return b, err }
		} else {
			r, err := pcapgo.NewReader(fh)
			if err != nil {
				t.Fatal(err)
			}
			link = r.LinkType()
			read = func() ([]byte, error) { b, _, err := r.ReadPacketData(); return b, err }
		}
		for link == layers.LinkTypeEthernet {
			b, err := read()
			if err != nil {
				break
			}
			frames = append(frames, b)
		}
		fh.Close()
	}
	if len(frames) < 100 {
		t.Fatalf("corpus: %d frames from %v", len(frames), files)
	}
	return frames
}

// handleOne runs one frame through the datapath and checks the invariants:
// exactly one counter moves; a forwarded IPv4 frame whose checksums were
// right still has right checksums, leaves with the rule's addresses and
// keeps its length.
func handleOne(t testing.TB, h *harness, in []byte, port int) {
	var before uint64
	for _, v := range h.d.c.reasons {
		before += v
	}
	valid := etherType(in) == etherIPv4 && len(sumErrors(in)) == 0
	f := append([]byte(nil), in...)
	out := h.d.Handle(port, f, len(f))
	var after uint64
	for _, v := range h.d.c.reasons {
		after += v
	}
	if after != before+1 {
		t.Fatalf("frame %x: counters moved by %d, want 1", in, after-before)
	}
	if out < 0 {
		return
	}
	if out >= 2 {
		t.Fatalf("frame %x: out port %d", in, out)
	}
	if valid {
		if errs := sumErrors(f); len(errs) != 0 {
			t.Fatalf("frame %x: forwarded as %x: %v", in, f, errs)
		}
	}
}

func TestRealCaptures(t *testing.T) {
	h := newHarness(t, true)
	fwd := 0
	for _, f := range corpus(t) {
		handleOne(t, h, f, 0)
		before := h.d.c.reasons[rOK]
		handleOne(t, h, transplant(append([]byte(nil), f...)), 0)
		if h.d.c.reasons[rOK] > before {
			fwd++
		}
		h.drain(t)
	}
	if fwd < 100 {
		t.Errorf("only %d corpus frames forwarded", fwd)
	}
	t.Logf("%d frames forwarded; counters %v", fwd, h.d.c.reasons)
}

func FuzzHandle(f *testing.F) {
	for i, fr := range corpus(f) {
		if i%7 == 0 && len(fr) <= 1600 { // big seeds make minimising slow
			f.Add(fr, uint8(0))
			f.Add(transplant(append([]byte(nil), fr...)), uint8(1))
		}
	}
	f.Add(tcpFrame(macA, macP0, ipA, ipX, "x"), uint8(1))
	f.Add(icmpError(macB, macP1, ipB, ipY, 3, 3, udpFrame(macP1, macB, ipY, ipB, "payload"), 1000), uint8(2))
	f.Add(arpFrame(1, macA, ipA, [6]byte{}, ipX), uint8(0))
	f.Add(tcp6Frame(macA, macP0, ip6A, ip6X, "v6"), uint8(0))
	f.Add(udp6Frame(macB, macP1, ip6B, ip6Y, "v6 reply"), uint8(1))
	f.Add(nsFrame(macA, ip6A, ip6X), uint8(0))
	f.Add(naFrame(macB, ip6B, macP1), uint8(1))
	// how&4: through the routes' table (route_test.go), IPv4 and IPv6.
	f.Add(tcpFrame(macA, macP0, ipA, []byte{198, 18, 50, 7}, "routed"), uint8(4))
	f.Add(tcp6Frame(macA, macP0, ip6A, net.ParseIP("2001:2:50::7"), "routed"), uint8(4))
	f.Add(udp6Frame(macA, macP0, ip6A, net.ParseIP("2001:99::1"), "default"), uint8(4))
	plain, routed := newHarness(f, true), newRouteHarness(f)
	f.Fuzz(func(t *testing.T, frame []byte, how uint8) {
		port := int(how & 1)
		h := plain
		if how&4 != 0 {
			h = routed
		}
		if how&2 != 0 {
			frame = transplant(frame)
			if port == 1 { // make it a reply from B to Y instead
				var p ippkt
				if parseIPv4(frame, &p) == rOK {
					copy(frame[p.ip+12:], ipB)
					copy(frame[p.ip+16:], ipY)
					frame = transplant2(frame)
				}
			}
		}
		handleOne(t, h, frame, port)
		h.drain(t)
	})
}

// transplant2 redoes the checksums after the addresses were changed.
func transplant2(f []byte) []byte {
	var p ippkt
	if parseIPv4(f, &p) != rOK {
		return f
	}
	f[p.ip+10], f[p.ip+11] = 0, 0
	be.PutUint16(f[p.ip+10:], csum(f[p.ip:p.ip+p.ihl], 0))
	if !p.frag && p.l4 != 0 {
		completeL4(f)
	}
	return f
}

func FuzzConfig(f *testing.F) {
	f.Add([]byte(testConfig))
	f.Add([]byte(routeConfig))
	f.Add([]byte("fwd:\n  ports: []\n"))
	f.Add([]byte("fwd: {ports: [{name: a, device: b, addresses: [1.2.3.4/8]}], rules: [{id: 1}]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ports, rules, err := parseConfig("f.yaml", b)
		if err != nil {
			return
		}
		if c == nil || len(ports) == 0 {
			t.Fatal("accepted a config without ports")
		}
		buildTable(ports, rules).withRoutes(c.routes)
	})
}

// completeL4 gives a test frame a right TCP or UDP checksum, computed from
// scratch (finishL4) after the test changed the packet.
func completeL4(f []byte) {
	var p ippkt
	switch etherType(f) {
	case etherIPv4:
		if parseIPv4(f, &p) != rOK {
			return
		}
	case etherIPv6:
		if parseIPv6(f, &p) != rOK {
			return
		}
	default:
		return
	}
	finishL4(f, &p)
}
