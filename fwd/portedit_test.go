package fwd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/internal/ctl"
)

// startApplianceControl is the control server over applianceConfig (with
// a comment) in a file, its datapath capturing into a ring.
func startApplianceControl(t *testing.T) (*harness, *ctlHarness) {
	t.Helper()
	dir := t.TempDir()
	ch := &ctlHarness{t: t, path: filepath.Join(dir, "fmcap.yaml"), sock: filepath.Join(dir, "s")}
	ch.write(strings.Replace(applianceConfig, "      gwlb:\n", "      gwlb: # the GWLB target group's\n", 1))
	cfg, ports, rules, err := LoadConfig(ch.path)
	if err != nil {
		t.Fatal(err)
	}
	h := applianceDatapath(t, ports, rules)
	ch.d = h.d
	ch.c = &control{cfg: cfg, ports: ports, d: h.d, log: discardLogger()}
	if err := listenControl(ch.sock, ch.c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.c.close)
	return h, ch
}

// An appliance port's capture, snap and VNIs change at run time: checked,
// written into the file (keeping comments and hand edits), and in force
// for the frames of the next burst; a refused edit changes nothing.
func TestPortEdits(t *testing.T) {
	h, ch := startApplianceControl(t)
	call := func(req ctl.Request) (*ctl.Response, error) { return ctl.Call(ch.sock, req) }
	gwlb := geneveCases()[0]
	if gwlb.want != tunOK {
		t.Fatal("the first GENEVE case is refused")
	}
	vni4242 := vxlanCases()[0]
	// captured says whether a frame in (after the edit, at the next
	// burst) is captured, and checks it is still returned (GWLB).
	captured := func(port int, f []byte) int {
		h.d.Begin(2e9)
		out, _ := h.in(port, f)
		if port == 0 && out != 0 {
			t.Errorf("GWLB frame not returned (%d)", out)
		}
		return len(h.drain(t))
	}

	resp, err := call(ctl.Request{Cmd: "ports.list"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Ports) != 2 || resp.Ports[0].Role != "gwlb" || resp.Ports[0].Capture != "ingress" || resp.Ports[0].Health.Port != 8080 ||
		resp.Ports[1].Role != "mirror" || len(resp.Ports[1].VNI) != 3 {
		t.Fatalf("ports.list: %+v", resp.Ports)
	}

	// A hand edit made while fwd runs, to another port's key and a comment.
	ch.write(strings.Replace(ch.read(), "    - name: m0\n", "    # hand: the collector\n    - name: m0\n", 1))
	if _, err := call(ctl.Request{Cmd: "ports.set-capture", Port: "g0", Mode: "none"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gwlb: # the GWLB target group's", "capture: none", "# hand: the collector"} {
		if !strings.Contains(ch.read(), want) {
			t.Errorf("file lacks %q:\n%s", want, ch.read())
		}
	}
	returned := h.drops("gwlb_returned")
	if n := captured(0, gwlb.frame); n != 0 {
		t.Errorf("capture none: %d records", n)
	}
	if got := h.drops("gwlb_returned"); got != returned+1 {
		t.Errorf("gwlb_returned %d, want %d", got, returned+1)
	}
	if _, err := call(ctl.Request{Cmd: "ports.set-capture", Port: "g0", Mode: "ingress", Snap: 40}); err != nil {
		t.Fatal(err)
	}
	h.d.Begin(3e9)
	h.in(0, gwlb.frame)
	if recs := h.drain(t); len(recs) != 1 || len(recs[0].Data) != 40 {
		t.Errorf("capture ingress, snap 40: %+v", recs)
	}
	if !strings.Contains(ch.read(), "snap: 40") {
		t.Errorf("snap not written:\n%s", ch.read())
	}

	// Mirror: a session no longer configured is dropped and counted.
	if n := captured(1, vni4242.frame); n != 1 {
		t.Fatalf("VNI 4242 before the edit: %d records", n)
	}
	resp, err = call(ctl.Request{Cmd: "ports.set-vni", Port: "m0", VNI: []uint32{5}})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.Ports[1].VNI; len(v) != 1 || v[0] != 5 {
		t.Errorf("answer's VNIs %v", v)
	}
	notConf := h.drops("mirror_vni_not_configured")
	if n := captured(1, vni4242.frame); n != 0 {
		t.Errorf("VNI 4242 not configured: %d records", n)
	}
	if got := h.drops("mirror_vni_not_configured"); got != notConf+1 {
		t.Errorf("mirror_vni_not_configured %d, want %d", got, notConf+1)
	}
	if !strings.Contains(ch.read(), "vni: [5]") {
		t.Errorf("vni not written:\n%s", ch.read())
	}
	if _, err := call(ctl.Request{Cmd: "ports.set-vni", Port: "m0"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ch.read(), "vni:") {
		t.Errorf("vni any: the key stays:\n%s", ch.read())
	}
	if n := captured(1, vni4242.frame); n != 1 {
		t.Errorf("any VNI: %d records", n)
	}

	// Refused: nothing changes, in the file or the datapath.
	before := ch.read()
	for _, tc := range []struct {
		req     ctl.Request
		wantErr string
	}{
		{ctl.Request{Cmd: "ports.set-capture", Port: "g0", Mode: "both"}, `port "g0" gwlb capture "both": use ingress or none`},
		{ctl.Request{Cmd: "ports.set-capture", Port: "g0"}, `port "g0": set-capture needs a mode: ingress or none`},
		{ctl.Request{Cmd: "ports.set-capture", Port: "m0", Mode: "ingress", Snap: 10}, `port "m0" mirror snap 10`},
		{ctl.Request{Cmd: "ports.set-vni", Port: "g0", VNI: []uint32{1}}, `port "g0" is a gwlb port: vni is a mirror port's`},
		{ctl.Request{Cmd: "ports.set-vni", Port: "m0", VNI: []uint32{1 << 24}}, `port "m0" vni 16777216`},
		{ctl.Request{Cmd: "ports.set-capture", Port: "p9", Mode: "none"}, `no port "p9"`},
	} {
		if _, err := call(tc.req); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%+v: error %v, want %q", tc.req, err, tc.wantErr)
		}
	}
	if ch.read() != before {
		t.Errorf("a refused edit changed the file")
	}
	// A hand edit of the port's own section: which to keep is the
	// operator's call.
	ch.write(strings.Replace(before, "mirror: {rule: 200}", "mirror: {rule: 200, vni: [8]}", 1))
	if _, err := call(ctl.Request{Cmd: "ports.set-capture", Port: "m0", Mode: "none"}); err == nil || !strings.Contains(err.Error(), `port "m0"'s mirror section was changed`) {
		t.Errorf("hand-edited section: %v\n%s", err, ch.read())
	}
	if n := captured(1, vni4242.frame); n != 1 {
		t.Errorf("after a refused edit: %d records", n)
	}
}

// The edit keeps the file's mode (writeback.go's machinery).
func TestPortEditKeepsMode(t *testing.T) {
	_, ch := startApplianceControl(t)
	if _, err := ctl.Call(ch.sock, ctl.Request{Cmd: "ports.set-capture", Port: "m0", Mode: "none"}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(ch.path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode after the edit: %v %v", st.Mode(), err)
	}
}
