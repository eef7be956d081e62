package origin

import (
	"net/netip"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	g := FromGWLB(0x0123456789abcdef, 0xfedcba9876543210, 0xdeadbeef)
	if got, want := g.Tunnel(), "gwlb:0123456789abcdef"; got != want {
		t.Errorf("Tunnel: got %q want %q", got, want)
	}
	if got, want := g.String(), "gwlb endpoint=0123456789abcdef attachment=fedcba9876543210 cookie=deadbeef"; got != want {
		t.Errorf("String: got %q want %q", got, want)
	}
	p, err := Parse(GWLB, g.Bytes())
	if err != nil || p != g {
		t.Fatalf("Parse: got %v %v want %v", p, err, g)
	}
	m := FromMirror(123, []byte{198, 18, 0, 1})
	vni, src, ok := m.Mirror()
	if !ok || vni != 123 || src != netip.MustParseAddr("198.18.0.1") {
		t.Fatalf("Mirror: got %d %s %v", vni, src, ok)
	}
	if got, want := m.Tunnel(), "mirror:vni-123"; got != want {
		t.Errorf("Tunnel: got %q want %q", got, want)
	}
	a6 := netip.MustParseAddr("2001:db8::1").As16()
	m6 := FromMirror(1<<24-1, a6[:])
	if got, want := m6.String(), "mirror vni=16777215 src=2001:db8::1"; got != want {
		t.Errorf("String: got %q want %q", got, want)
	}
	for _, c := range []struct {
		k Kind
		n int
	}{{None, 1}, {GWLB, 19}, {Mirror, 8}, {3, 0}} {
		if _, err := Parse(c.k, make([]byte, c.n)); err == nil {
			t.Errorf("Parse(%d, %d bytes): no error", c.k, c.n)
		}
	}
}
