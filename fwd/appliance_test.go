package fwd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/shmring"
)

// The appliance tests' ports: g0 is a GWLB appliance at tunApp (GENEVE
// from tunGWLB), m0 a mirror target at tunColl (VXLAN from tunMirror).
const applianceConfig = `
ring:
  path: ""
fwd:
  ports:
    - name: g0
      device: veth0
      addresses: [198.18.100.2/24]
      gwlb:
        rule: 100
        health_check: {protocol: http, port: 8080, path: /healthz}
    - name: m0
      device: veth1
      addresses: [198.18.101.2/24, "2001:2:0:101::2/64"]
      mirror: {rule: 200, vni: [4242, 7, 16777215]}
`

func newApplianceHarness(t testing.TB) *harness {
	t.Helper()
	_, ports, rules, err := parseConfig("test.yaml", []byte(applianceConfig))
	if err != nil {
		t.Fatal(err)
	}
	return applianceDatapath(t, ports, rules)
}

// applianceDatapath runs applianceConfig's ports, capturing into a ring.
func applianceDatapath(t testing.TB, ports []Port, rules []Rule) *harness {
	h := &harness{tx: &sink{}}
	var prod *shmring.Producer
	h.ring, prod, h.cons = testRing(t, 64<<20)
	h.d = NewDatapath(ports, [][6]byte{macApp, macApp}, buildTable(ports, rules), prod, h.tx)
	h.d.Begin(1e9)
	return h
}

func (h *harness) drops(name string) uint64 {
	h.d.publish()
	return h.d.Stats().Drops[name]
}

// A GWLB frame comes back as geneveReturn makes it, and its inner packet is
// captured behind the documented Ethernet header; refused frames are
// counted under their reason and neither returned nor captured.
func TestGWLBAppliance(t *testing.T) {
	h := newApplianceHarness(t)
	returned := 0
	for _, c := range geneveCases() {
		out, f := h.in(0, c.frame)
		recs := h.drain(t)
		if c.want != tunOK {
			if out != -1 || len(recs) != 0 {
				t.Errorf("%s: refused frame returned on %d, %d captured", c.name, out, len(recs))
			}
			continue
		}
		returned++
		var g geneveInfo
		parseGeneve(c.frame, &g)
		want := bytes.Clone(c.frame)
		geneveReturn(want, &g)
		if out != 0 || !bytes.Equal(f, want) {
			t.Errorf("%s: returned on port %d:\n%x\nwant\n%x", c.name, out, f, want)
		}
		if len(recs) != 1 {
			t.Fatalf("%s: %d records", c.name, len(recs))
		}
		r := recs[0]
		et := []byte{8, 0}
		if c.inner6 {
			et = []byte{0x86, 0xdd}
		}
		wantRec := append(append(make([]byte, 12), et...), c.inner...)
		if !bytes.Equal(r.Data, wantRec) || int(r.WireLen) != len(wantRec) || r.Port != 0 || r.Dir != shmring.DirIngress || r.Rule != 100 {
			t.Errorf("%s: captured port %d dir %v rule %d wire %d\n%x\nwant\n%x", c.name, r.Port, r.Dir, r.Rule, r.WireLen, r.Data, wantRec)
		}
		// The GENEVE identity rides along (shmring FORMAT, origin kind 1).
		o := origin.FromGWLB(g.endpointID, g.attachmentID, g.flowCookie)
		if g.endpointID == 0 && g.attachmentID == 0 {
			t.Errorf("%s: case without GWLB ids", c.name)
		}
		if r.OriginKind != origin.GWLB || !bytes.Equal(r.Origin, o.Bytes()) {
			t.Errorf("%s: origin kind %d % x, want % x", c.name, r.OriginKind, r.Origin, o.Bytes())
		}
	}
	// Frames refused in their outer headers are counted by the datapath's
	// own checks (bad_ip_header, not_appliance_traffic, ...); from the UDP
	// length on, by the tunnel's reasons.
	for _, c := range geneveCases() {
		if c.want >= tunBadUDPLength && c.want != tunWrongPort {
			if got := h.drops(c.want.String()); got == 0 {
				t.Errorf("%s: not counted under %s", c.name, c.want)
			}
		}
	}
	if got := h.drops("gwlb_returned"); got != uint64(returned) {
		t.Errorf("gwlb_returned %d, want %d", got, returned)
	}
	// Not for the appliance: UDP to another port, TCP to another port.
	before := h.drops("not_appliance_traffic")
	h.in(0, build(eth(macRouter, macApp), ip(tunGWLB, tunApp, layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 53}, gopacket.Payload("x")))
	h.in(0, tcpFrame(macRouter, macApp, tunGWLB, tunApp, ""))
	if got := h.drops("not_appliance_traffic") - before; got != 2 {
		t.Errorf("not_appliance_traffic grew by %d, want 2", got)
	}
	// ARP and ping are answered.
	if out, _ := h.in(0, arpFrame(1, macRouter, tunGWLB, [6]byte{}, tunApp)); out != 0 {
		t.Errorf("ARP for the appliance's address: %d", out)
	}
}

// Mirrored frames are captured as carried, with the inner IP header's
// length as wire length, for the configured sessions only.
func TestMirrorTarget(t *testing.T) {
	h := newApplianceHarness(t)
	want := 0
	for _, c := range vxlanCases() {
		f := c.frame
		if c.want != tunOK {
			h.in(1, f)
			if recs := h.drain(t); len(recs) != 0 {
				t.Errorf("%s: refused frame captured", c.name)
			}
			continue
		}
		// Readdress to the target's own MAC and addresses (the cases are
		// built for the parsers, from the router to macApp).
		out, _ := h.in(1, f)
		recs := h.drain(t)
		if out != -1 {
			t.Errorf("%s: mirror frame sent on %d", c.name, out)
		}
		if c.vni != 4242 && c.vni != 7 && c.vni != 0xffffff {
			if len(recs) != 0 {
				t.Errorf("%s: VNI %d not configured, captured", c.name, c.vni)
			}
			continue
		}
		want++
		if len(recs) != 1 || !bytes.Equal(recs[0].Data, c.inner) || int(recs[0].WireLen) != c.origLen || recs[0].Rule != 200 || recs[0].Port != 1 {
			t.Errorf("%s: captured %d records %+v, want inner %x wire %d", c.name, len(recs), recs, c.inner, c.origLen)
		}
		// The session's VNI and the outer source ride along (origin kind 2).
		var v vxlanInfo
		parseVXLAN(c.frame, &v)
		src := []byte(tunMirror)
		if v.v6 {
			src = c.frame[v.ip+8 : v.ip+24]
		}
		o := origin.FromMirror(c.vni, src)
		if len(recs) == 1 && (recs[0].OriginKind != origin.Mirror || !bytes.Equal(recs[0].Origin, o.Bytes())) {
			t.Errorf("%s: origin kind %d % x, want % x", c.name, recs[0].OriginKind, recs[0].Origin, o.Bytes())
		}
	}
	if want == 0 {
		t.Fatal("no case with a configured VNI")
	}
	if got := h.drops("mirror_captured"); got != uint64(want) {
		t.Errorf("mirror_captured %d, want %d", got, want)
	}
}

// healthSeg is a TCP segment from the GWLB node to the health port.
func healthSeg(flags string, seq, ack uint32, payload string) []byte {
	tcp := &layers.TCP{SrcPort: 33000, DstPort: 8080, Seq: seq, Ack: ack, Window: 1000,
		SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"), FIN: strings.Contains(flags, "F"),
		RST: strings.Contains(flags, "R"), PSH: strings.Contains(flags, "P")}
	return build(eth(macRouter, macApp), ip(tunGWLB, tunApp, layers.IPProtocolTCP), tcp, gopacket.Payload(payload))
}

// answer is the one segment fwd sent for the last health-check segment.
func (h *harness) answer(t *testing.T) *layers.TCP {
	t.Helper()
	if len(h.tx.sent) != 1 {
		t.Fatalf("%d segments sent, want 1", len(h.tx.sent))
	}
	s := h.tx.sent[0]
	h.tx.sent = nil
	checkSums(t, s.frame)
	wantMACs(t, s.frame, macApp, macRouter)
	wantAddrs(t, s.frame, tunApp, tunGWLB)
	p := gopacket.NewPacket(s.frame, layers.LayerTypeEthernet, gopacket.Default)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil || s.port != 0 || tcp.SrcPort != 8080 || tcp.DstPort != 33000 {
		t.Fatalf("answer on port %d: %v", s.port, p)
	}
	return tcp
}

// The health check's stateless TCP: handshake, an HTTP request answered
// with its status and FIN, a FIN acknowledged; 503 while captures fail.
func TestHealthCheck(t *testing.T) {
	h := newApplianceHarness(t)
	h.in(0, healthSeg("S", 1000, 0, ""))
	syn := h.answer(t)
	if !syn.SYN || !syn.ACK || syn.Ack != 1001 {
		t.Fatalf("SYN answered with %+v", syn)
	}
	h.in(0, healthSeg("S", 1000, 0, ""))
	if again := h.answer(t); again.Seq != syn.Seq {
		t.Errorf("retransmitted SYN answered with ISN %d, then %d", syn.Seq, again.Seq)
	}
	isn := syn.Seq
	h.in(0, healthSeg("A", 1001, isn+1, ""))
	if len(h.tx.sent) != 0 {
		t.Errorf("bare ACK answered")
	}
	get := func(path string) *layers.TCP {
		req := "GET " + path + " HTTP/1.1\r\nHost: 198.18.100.2\r\n\r\n"
		h.in(0, healthSeg("AP", 1001, isn+1, req))
		a := h.answer(t)
		if a.Seq != isn+1 || a.Ack != 1001+uint32(len(req)) || !a.FIN || !a.ACK {
			t.Errorf("answer to GET %s: seq %d ack %d FIN %v", path, a.Seq, a.Ack, a.FIN)
		}
		return a
	}
	status := func(a *layers.TCP) string {
		line, _, _ := strings.Cut(string(a.Payload), "\r\n")
		return line
	}
	if s := status(get("/healthz")); s != "HTTP/1.1 200 OK" {
		t.Errorf("GET /healthz: %q", s)
	}
	if s := status(get("/healthz?x=1")); s != "HTTP/1.1 200 OK" {
		t.Errorf("GET /healthz?x=1: %q", s)
	}
	if s := status(get("/")); s != "HTTP/1.1 404 Not Found" {
		t.Errorf("GET /: %q", s)
	}
	// A request in two segments: the first half is acknowledged; the
	// second, with no request line, is a bad request (the check's requests
	// come in one segment; the responder keeps no state).
	h.in(0, healthSeg("AP", 1001, isn+1, "GET /healthz HTTP/1.1\r\n"))
	if a := h.answer(t); len(a.Payload) != 0 || a.Ack != 1001+23 {
		t.Errorf("first half answered with %q ack %d", a.Payload, a.Ack)
	}
	h.in(0, healthSeg("AP", 1024, isn+1, "Host: x\r\n\r\n"))
	if s := status(h.answer(t)); s != "HTTP/1.1 400 Bad Request" {
		t.Errorf("second half: %q", s)
	}
	// HEAD: the headers alone.
	h.in(0, healthSeg("AP", 1001, isn+1, "HEAD /healthz HTTP/1.1\r\n\r\n"))
	if a := h.answer(t); !strings.HasPrefix(string(a.Payload), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(a.Payload), "\r\n\r\n") {
		t.Errorf("HEAD: %q", a.Payload)
	}
	// The peer's FIN is acknowledged.
	h.in(0, healthSeg("AF", 1100, isn+50, ""))
	if a := h.answer(t); !a.ACK || a.FIN || a.Ack != 1101 || a.Seq != isn+50 {
		t.Errorf("FIN answered with %+v", a)
	}
	h.in(0, healthSeg("R", 1101, 0, ""))
	if len(h.tx.sent) != 0 {
		t.Errorf("RST answered")
	}
	// Captures dropped (a full ring) within the last second: 503; a second
	// later without drops: 200 again. Forwarding goes on meanwhile.
	h.d.c.captureDrops++
	h.d.Begin(h.d.now + 2e8)
	if s := status(get("/healthz")); s != "HTTP/1.1 503 Service Unavailable" {
		t.Errorf("with capture drops: %q", s)
	}
	if out, _ := h.in(0, geneveCases()[0].frame); out != 0 {
		t.Errorf("with capture drops, GENEVE not returned")
	}
	h.d.Begin(h.d.now + 12e8)
	if s := status(get("/healthz")); s != "HTTP/1.1 200 OK" {
		t.Errorf("a second after the drops: %q", s)
	}
}

// Configuration: the roles' settings checked with their line.
func TestApplianceConfig(t *testing.T) {
	base := `
ring:
  path: ""
fwd:
  ports:
    - name: g0
      device: veth0
      addresses: [198.18.100.2/24]
      gwlb: %s
    - name: p1
      device: veth1
      addresses: [198.18.2.1/24]
`
	for _, c := range []struct{ gwlb, extra, want string }{
		{"{rule: 0}", "", "add rule: ID"},
		{"{rule: 1, capture: both}", "", "use ingress or none"},
		{"{rule: 1, health_check: {protocol: https}}", "", "use tcp or http"},
		{"{rule: 1, health_check: {path: healthz}}", "", "an absolute path"},
		{"{rule: 1, snap: 10}", "", "use 14..65535"},
		{"{rule: 1}", "  rules:\n    - {id: 2, in: g0, local: 198.18.100.2, peer: 198.18.100.9, out: p1, out_local: 198.18.2.1, target: 198.18.2.2}\n", "appliance port"},
		{"{rule: 2}", "  rules:\n    - {id: 2, in: p1, local: 198.18.2.1, peer: 198.18.2.9, out: p1, out_local: 198.18.2.1, target: 198.18.2.2}\n", "is the rule id of gwlb port"},
	} {
		cfg := strings.Replace(base, "%s", c.gwlb, 1) + c.extra
		_, _, _, err := parseConfig("t.yaml", []byte(cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "t.yaml:") {
			t.Errorf("gwlb %s %q: got %v, want %q with its line", c.gwlb, c.extra, err, c.want)
		}
	}
	_, ports, _, err := parseConfig("t.yaml", []byte(strings.Replace(base, "%s", "{rule: 5, health_check: {protocol: http, port: 8080}}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	a := ports[0].Appliance
	if a == nil || a.Role != RoleGWLB || a.Rule != 5 || !a.Capture || a.Snap != 65535 || a.Health != (HealthCheck{Port: 8080, HTTP: true, Path: "/", RequireCapture: true}) {
		t.Errorf("parsed %+v", a)
	}
}

// BenchmarkGWLB is the appliance's round trip per frame: a GENEVE frame
// from GWLB (64-byte inner TCP packet: 146 bytes on the wire) checked,
// its inner packet captured (or not) and the frame turned back.
func BenchmarkGWLB(b *testing.B) {
	for _, capture := range []bool{false, true} {
		b.Run(map[bool]string{false: "capture=none", true: "capture=ingress"}[capture], func(b *testing.B) {
			h := newApplianceHarness(b)
			h.d.ports[0].cfg.Appliance.Capture = capture
			stop := h.consume()
			inner := build(ip(tunClient, tunServer, layers.IPProtocolTCP),
				&layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, Ack: 9, ACK: true, Window: 500}, gopacket.Payload("0123456789"))
			tmpl := geneveFrame(geneveHeader(0x0800, 0, gwlbTriple()), inner, false)
			const burst = 32
			bufs := make([][]byte, burst)
			for i := range bufs {
				bufs[i] = make([]byte, len(tmpl))
			}
			b.SetBytes(int64(len(tmpl)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += burst {
				h.d.Begin(h.d.now)
				for _, f := range bufs {
					copy(f, tmpl)
					if h.d.Handle(0, f, len(f)) != 0 {
						b.Fatal("not returned")
					}
				}
				h.d.End()
			}
			b.StopTimer()
			stop()
			b.ReportMetric(float64(h.d.c.captureDrops), "capture-drops")
		})
	}
}

// The benchmark's GENEVE frame is one the appliance takes and returns.
func TestGWLBBenchFrame(t *testing.T) {
	h := newApplianceHarness(t)
	f := gwlbBenchFrame(h.d.ports[0].cfg, macApp)
	var g geneveInfo
	if r := parseGeneve(f, &g); r != tunOK {
		t.Fatalf("parseGeneve: %v", r)
	}
	checkSums(t, f)
	if out, _ := h.in(0, f); out != 0 {
		t.Fatalf("bench frame not returned (%d): %v", out, h.d.Stats().Drops)
	}
}

// FuzzAppliance feeds arbitrary frames to a GWLB port and a mirror port
// (GENEVE, VXLAN, health-check segments, anything): nothing panics, a frame
// sent back is the received one returned (its length unchanged), and a
// health-check answer is a well-formed IPv4 TCP segment with right sums.
func FuzzAppliance(f *testing.F) {
	for _, c := range geneveCases() {
		f.Add(c.frame, uint8(0))
	}
	for _, c := range vxlanCases() {
		f.Add(c.frame, uint8(1))
	}
	f.Add(healthSeg("S", 1, 0, ""), uint8(0))
	f.Add(healthSeg("AP", 2, 3, "GET /healthz HTTP/1.1\r\n\r\n"), uint8(0))
	f.Add(healthSeg("AP", 2, 3, "GET\r\n\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, frame []byte, port uint8) {
		h := newApplianceHarness(t)
		in := int(port % 2)
		b := append([]byte(nil), frame...)
		out := h.d.Handle(in, b, len(b))
		h.d.End()
		if out != -1 && out != in {
			t.Fatalf("sent on port %d, came in on %d", out, in)
		}
		for _, s := range h.tx.sent {
			if errs := sumErrors(s.frame); len(errs) > 0 && etherType(s.frame) == etherIPv4 && s.frame[14+9] == protoTCP {
				t.Fatalf("health answer with bad sums: %v", errs)
			}
		}
		h.drain(t)
	})
}
