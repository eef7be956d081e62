package fwd

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fmcap/fmcap/internal/ctl"
)

// ctlHarness is fwd's control server, in process, over a configuration
// file in a temporary directory: the same path fmctl's edits take.
type ctlHarness struct {
	t          *testing.T
	path, sock string
	d          *Datapath
	c          *control
}

func startControl(t *testing.T, src string) *ctlHarness {
	t.Helper()
	dir := t.TempDir()
	h := &ctlHarness{t: t, path: filepath.Join(dir, "fmcap.yaml"), sock: filepath.Join(dir, "s")}
	h.write(src)
	cfg, ports, rules, err := LoadConfig(h.path)
	if err != nil {
		t.Fatal(err)
	}
	h.d = NewDatapath(ports, [][6]byte{macP0, macP1}, buildTable(ports, rules).withRoutes(cfg.routes), nil, &sink{})
	c := &control{cfg: cfg, ports: ports, d: h.d, log: discardLogger()}
	h.c = c
	if err := listenControl(h.sock, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return h
}

// write replaces the file as an editor would (in place: an editor that
// renames is the same to fwd, which compares contents).
func (h *ctlHarness) write(src string) {
	h.t.Helper()
	if err := os.WriteFile(h.path, []byte(src), 0o640); err != nil {
		h.t.Fatal(err)
	}
}

func (h *ctlHarness) read() string {
	h.t.Helper()
	b, err := os.ReadFile(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// modes is the running table, rule id → capture mode and snap.
func (h *ctlHarness) modes() map[uint32]string {
	got := map[uint32]string{}
	for _, r := range h.d.Table().src {
		got[r.ID] = r.Mode.String() + "/" + itoa(int(r.Snap))
	}
	return got
}

// A hand edit made while fwd runs (a comment, a new key, another rule's
// snap) survives an fmctl edit, which is made to the current file; an edit
// that clashes with the hand edit, or a file that no longer passes the
// checks, is refused with a message, and nothing changes, in the file or
// in the running table.
func TestWriteBackHandEdits(t *testing.T) {
	rule9 := ctl.Rule{ID: 9, In: "p0", Local: "198.18.1.3", Peer: "198.18.1.2", Out: "p1", OutLocal: "198.18.2.1", Target: "198.18.2.9", Capture: "egress"}
	rule9b := rule9
	rule9b.ID = 10 // overlaps rule9's match
	handRule9 := "    - {id: 9, in: p0, local: 198.18.1.3, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.8}\n"
	for _, tc := range []struct {
		name    string
		before  []ctl.Request       // edits made before the hand edit
		hand    func(string) string // the operator's edit while fwd runs
		req     ctl.Request
		wantErr string   // "" when the edit is made
		wantIn  []string // in the file afterwards
		running map[uint32]string
	}{
		{
			name: "comment and new keys survive set-mode",
			hand: func(s string) string {
				s = strings.Replace(s, "  rules:\n", "  rules:\n    # hand comment: rule 2 is the backup path\n", 1)
				s = strings.Replace(s, "      gateway: 198.18.2.254\n", "      gateway: 198.18.2.254\n      gateway6: \"2001:2:0:2::fe\"\n", 1)
				return strings.Replace(s, "capture: inline, snap: 60}", "capture: inline, snap: 90}", 1)
			},
			req:     ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "ingress"},
			wantIn:  []string{"# hand comment: rule 2 is the backup path", `gateway6: "2001:2:0:2::fe"`, "snap: 90", "capture: ingress"},
			running: map[uint32]string{1: "ingress/65535", 2: "inline/60", 3: "both/65535"}, // rule 2's snap: at restart
		},
		{
			name:    "no hand edit",
			req:     ctl.Request{Cmd: "rules.add", Rule: &rule9},
			wantIn:  []string{"target: 198.18.2.9", "capture: egress"},
			running: map[uint32]string{1: "both/65535", 2: "inline/60", 3: "both/65535", 9: "egress/65535"},
		},
		{
			name: "same rule changed by hand",
			hand: func(s string) string {
				return strings.Replace(s, "target: 198.18.2.2, capture: both}", "target: 198.18.2.2, capture: none}", 1)
			},
			req:     ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "inline"},
			wantErr: "rule 1 was changed in",
		},
		{
			name:    "same rule removed by hand",
			hand:    func(s string) string { return strings.Replace(s, "    - {id: 2,", "    #- {id: 2,", 1) },
			req:     ctl.Request{Cmd: "rules.del", ID: 2},
			wantErr: "rule 2 was removed from",
		},
		{
			name:    "same rule added by hand",
			hand:    func(s string) string { return s + handRule9 },
			req:     ctl.Request{Cmd: "rules.add", Rule: &rule9},
			wantErr: "rule 9 was added to",
		},
		{
			name:    "hand-added rule overlaps the added one",
			hand:    func(s string) string { return s + strings.Replace(handRule9, "id: 9", "id: 10", 1) },
			req:     ctl.Request{Cmd: "rules.add", Rule: &rule9},
			wantErr: "rule 9 overlaps rule 10",
		},
		{
			name:    "file no longer parses",
			hand:    func(s string) string { return strings.Replace(s, "  rules:", "  rules: [", 1) },
			req:     ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "inline"},
			wantErr: "no longer passes the checks",
		},
		{
			name:    "unknown section added by hand",
			hand:    func(s string) string { return s + "indexr:\n  store: /x\n" },
			req:     ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "inline"},
			wantErr: "fmcap.yaml:18: unknown key indexr",
		},
		{
			name:    "refused by the running checks",
			before:  []ctl.Request{{Cmd: "rules.add", Rule: &rule9}},
			hand:    func(s string) string { return "# a hand comment\n" + s },
			req:     ctl.Request{Cmd: "rules.add", Rule: &rule9b},
			wantErr: "rule 10 overlaps rule 9",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startControl(t, "# operator's comment\n"+testConfig)
			for _, req := range tc.before {
				if _, err := ctl.Call(h.sock, req); err != nil {
					t.Fatal(err)
				}
			}
			before := h.modes()
			if tc.hand != nil {
				h.write(tc.hand(h.read()))
			}
			edited := h.read()
			_, err := ctl.Call(h.sock, tc.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("edit: %v, want an error saying %q", err, tc.wantErr)
				}
				if got := h.read(); got != edited {
					t.Errorf("refused edit changed the file:\n%s\nwas:\n%s", got, edited)
				}
				if got := h.modes(); !sameMap(got, before) {
					t.Errorf("refused edit changed the running table to %v, was %v", got, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			got := h.read()
			for _, w := range append(tc.wantIn, "# operator's comment") {
				if !strings.Contains(got, w) {
					t.Errorf("file lacks %q after the edit:\n%s", w, got)
				}
			}
			if _, _, _, err := LoadConfig(h.path); err != nil {
				t.Errorf("file after the edit does not load: %v\n%s", err, got)
			}
			if m := h.modes(); !sameMap(m, tc.running) {
				t.Errorf("running table %v, want %v", m, tc.running)
			}
			// Once fwd has written the file, the next edit finds it unchanged.
			if _, err := ctl.Call(h.sock, ctl.Request{Cmd: "rules.set-mode", ID: 3, Mode: "none"}); err != nil {
				t.Errorf("second edit: %v", err)
			}
		})
	}
}

func sameMap(a, b map[uint32]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The write-back keeps the file's owner, group and mode, writes through a
// symlinked configuration, and never follows a symlink planted at the
// temporary name fwd used to write (every random name atomicfile may draw
// is covered by its own tests).
func TestWriteBackFileAttributes(t *testing.T) {
	h := startControl(t, testConfig)
	dir := filepath.Dir(h.path)
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 4242 // a group root is not in: kept only by an explicit chown
		if err := os.Chown(h.path, 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(h.path, 0o640); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("victim"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, ".fmcap.yaml.tmp")); err != nil {
		t.Fatal(err)
	}
	old := umask(0o77)
	_, err := ctl.Call(h.sock, ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "inline"})
	umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "victim" {
		t.Errorf("the planted symlink's target now holds %q", b)
	}
	st, err := os.Lstat(h.path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o640 {
		t.Errorf("mode %v, want -rw-r-----", st.Mode())
	}
	if g := st.Sys().(*syscall.Stat_t).Gid; g != uint32(gid) {
		t.Errorf("group %d, want %d", g, gid)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); n != "fmcap.yaml" && n != "s" && n != ".fmcap.yaml.tmp" {
			t.Errorf("left behind: %s", n)
		}
	}

	// A symlinked configuration stays a symlink; the file it names changes.
	real := filepath.Join(t.TempDir(), "real.yaml")
	if err := os.Rename(h.path, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, h.path); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Call(h.sock, ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "egress"}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(h.path); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the configuration symlink was replaced: %v", err)
	}
	if b, _ := os.ReadFile(real); !strings.Contains(string(b), "capture: egress") {
		t.Errorf("the symlink's file did not get the edit:\n%s", b)
	}
}

// routeModes is the running table's routes, id → capture mode, with the
// family of each ("4" or "6").
func (h *ctlHarness) routeModes() map[uint32]string {
	t := h.d.Table()
	got := map[uint32]string{}
	for fam, l := range map[string][]rroute{"4": t.routes, "6": t.routes6} {
		for _, r := range l {
			got[t.rules[r.idx].id] = fam + "/" + t.rules[r.idx].mode.String()
		}
	}
	return got
}

// Routes are edited at run time as rules are: written to the file (hand
// edits kept), then run; refused edits change neither; a rule edit keeps
// the routes running.
func TestRouteEditsWriteBack(t *testing.T) {
	h := startControl(t, "# operator's comment\n"+routeConfig)
	want := map[uint32]string{20: "4/both", 21: "4/ingress", 22: "4/none", 23: "6/both", 24: "6/ingress", 25: "6/none"}
	if got := h.routeModes(); !sameMap(got, want) {
		t.Fatalf("routes at start %v, want %v", got, want)
	}
	r26 := ctl.Route{ID: 26, Prefix: "2001:2:60::/48", Via: "2001:2:0:2::fe", Out: "p1", In: []string{"p0"}, Capture: "egress"}
	for _, step := range []struct {
		req     ctl.Request
		hand    func(string) string
		wantErr string
		wantIn  []string
		apply   func()
	}{
		{req: ctl.Request{Cmd: "routes.add", Route: &r26}, wantIn: []string{"prefix: 2001:2:60::/48", "capture: egress"},
			apply: func() { want[26] = "6/egress" }},
		{req: ctl.Request{Cmd: "routes.set-mode", ID: 20, Mode: "ingress"}, wantIn: []string{"via: 198.18.2.254, out: p1, capture: ingress}"},
			hand:  func(s string) string { return strings.Replace(s, "  routes:\n", "  routes:\n    # hand comment\n", 1) },
			apply: func() { want[20] = "4/ingress" }},
		{req: ctl.Request{Cmd: "routes.del", ID: 21}, apply: func() { delete(want, 21) }},
		{req: ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "none"}, wantIn: []string{"# hand comment"}},
		{req: ctl.Request{Cmd: "routes.add", Route: &ctl.Route{ID: 1, Prefix: "198.18.60.0/24", Via: "198.18.2.254", Out: "p1"}}, wantErr: "id 1 is rule 1's already"},
		{req: ctl.Request{Cmd: "routes.add", Route: &ctl.Route{ID: 30, Prefix: "2001:2:70::/48", Via: "198.18.2.254", Out: "p1"}}, wantErr: "the next hop's IPv6 address"},
		{req: ctl.Request{Cmd: "routes.add", Route: &r26}, wantErr: "id 26 is route 26's already"},
		{req: ctl.Request{Cmd: "routes.del", ID: 99}, wantErr: "no route with id 99"},
		{req: ctl.Request{Cmd: "routes.set-mode", ID: 22, Mode: "all"}, wantErr: "all"},
		{req: ctl.Request{Cmd: "routes.add"}, wantErr: "routes.add needs a route"},
		{req: ctl.Request{Cmd: "routes.set-mode", ID: 23, Mode: "none"}, wantErr: "route 23 was changed in",
			hand: func(s string) string {
				return strings.Replace(s, `via: "2001:2:0:2::fe", out: p1}`, `via: "2001:2:0:2::fe", out: p1, snap: 99}`, 1)
			}},
	} {
		if step.hand != nil {
			h.write(step.hand(h.read()))
		}
		before := h.read()
		resp, err := ctl.Call(h.sock, step.req)
		if step.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), step.wantErr) {
				t.Fatalf("%+v: %v, want an error saying %q", step.req, err, step.wantErr)
			}
			if h.read() != before {
				t.Errorf("%+v: refused, but the file changed", step.req)
			}
		} else if err != nil {
			t.Fatalf("%+v: %v", step.req, err)
		} else {
			if strings.HasPrefix(step.req.Cmd, "routes.") && len(resp.Routes) != len(h.routeModes()) {
				t.Errorf("%+v: answered with %d routes, %d run", step.req, len(resp.Routes), len(h.routeModes()))
			}
			if step.apply != nil {
				step.apply()
			}
		}
		file := h.read()
		for _, w := range append(step.wantIn, "# operator's comment") {
			if !strings.Contains(file, w) {
				t.Errorf("%+v: the file lacks %q:\n%s", step.req, w, file)
			}
		}
		if _, _, _, err := LoadConfig(h.path); err != nil && step.wantErr == "" {
			t.Errorf("%+v: the file does not load: %v", step.req, err)
		}
		if got := h.routeModes(); !sameMap(got, want) {
			t.Errorf("%+v: running routes %v, want %v", step.req, got, want)
		}
	}
}

// FuzzControl: any request on the control socket either changes nothing
// (the file's bytes and the running table stay) or leaves a file that
// loads and a table running exactly the file's routes.
func FuzzControl(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"routes.add","route":{"id":26,"prefix":"2001:2:60::/48","via":"2001:2:0:2::fe","out":"p1","in":["p0"],"capture":"egress"}}`,
		`{"cmd":"routes.add","route":{"id":27,"prefix":"198.18.60.0/24","via":"198.18.2.254","out":"p1","snap":96}}`,
		`{"cmd":"routes.del","id":20}`,
		`{"cmd":"routes.set-mode","id":23,"mode":"none"}`,
		`{"cmd":"rules.set-mode","id":1,"mode":"inline"}`,
		`{"cmd":"routes.list"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ctl.Request
		if json.Unmarshal(b, &req) != nil || req.Cmd == "stats" {
			return
		}
		h := startControl(t, routeConfig)
		c := h.c
		file, routes := h.read(), h.routeModes()
		var resp ctl.Response
		if err := c.do(&req, &resp); err != nil {
			if h.read() != file || !sameMap(h.routeModes(), routes) {
				t.Fatalf("%s refused (%v), but the file or the table changed", b, err)
			}
			return
		}
		cfg, _, _, err := LoadConfig(h.path)
		if err != nil {
			t.Fatalf("%s: the file written does not load: %v\n%s", b, err, h.read())
		}
		if got := h.routeModes(); len(got) != len(cfg.Fwd.Routes) {
			t.Fatalf("%s: %d routes run, the file has %d", b, len(got), len(cfg.Fwd.Routes))
		}
	})
}
