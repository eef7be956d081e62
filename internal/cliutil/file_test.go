package cliutil

import (
	"strings"
	"testing"
)

// Every command refuses the same files, naming the file, the line and
// what to do; and accepts the same ones.
func TestParseFile(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string // want "": accepted
	}{
		{"all sections", "ring:\n  path: /r\nfwd: {}\nwriter:\n  store: /s\nindexer:\nslice: ~\n", ""},
		{"comments kept out of the way", "# fmcap\nwriter: # the writer\n  store: /s\n", ""},
		{"empty", "", "f.yaml: empty file: see systemd/fmcap.yaml"},
		{"only comments", "# nothing yet\n", "f.yaml: empty file"},
		{"only a document start", "---\n", "f.yaml: empty file"},
		{"syntax error", "writer:\n  store: [\n", "f.yaml:2: did not find expected node content"},
		{"not a mapping", "- writer\n", "f.yaml:1: the file must be a mapping of sections"},
		{"a value", "writer\n", "f.yaml:1: the file must be a mapping of sections"},
		{"unknown section", "writer:\n  store: /s\nwirter:\n  store: /t\n", "f.yaml:3: unknown key wirter: not a section (ring, fwd, writer, indexer, slice, fmcapd, upload)"},
		{"section twice", "writer:\n  store: /s\nring: {}\nwriter:\n  level: 3\n", "f.yaml:4: section writer given twice (first at line 1)"},
		{"section a value", "ring:\n  path: /r\nindexer: 3\n", "f.yaml:3: indexer: expected a mapping of settings"},
		{"section a list", "slice:\n  - a\n", "f.yaml:2: slice: expected a mapping of settings"},
		{"second document", "writer: {}\n---\nfwd: {}\n", "f.yaml:2: a second YAML document (after ---)"},
		{"syntax error in the second document", "writer: {}\n---\nfwd: [\n", "f.yaml:3:"},
		{"section by alias", "ring: &r\n  path: /r\nwriter: *r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFile("f.yaml", []byte(tc.src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && !strings.HasPrefix(err.Error(), tc.want):
				t.Errorf("got %q, want it to start with %q", err, tc.want)
			case tc.want == "" && f.Root == nil:
				t.Error("accepted without a document")
			}
		})
	}
}

// Lookup and Line walk keys and indexes; a missing key's line is its
// parent's, so an error about it points near.
func TestLookupLine(t *testing.T) {
	src := "ring:\n  path: /r\nfwd:\n  ports:\n    - name: p0\n      device: eth1\n    - {name: p1, device: eth2}\n  rules:\n"
	f, err := ParseFile("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  []any
		value string // "" absent (or not a value)
		line  int
	}{
		{[]any{"ring", "path"}, "/r", 2},
		{[]any{"fwd", "ports", 0, "device"}, "eth1", 6},
		{[]any{"fwd", "ports", 1, "name"}, "p1", 7},
		{[]any{"fwd", "ports", 1}, "", 7},
		{[]any{"fwd", "ports", 0, "mtu"}, "", 5},  // missing: the item's line
		{[]any{"fwd", "ports", 5, "name"}, "", 4}, // no such item: the list's key
		{[]any{"fwd", "rules"}, "", 8},
		{[]any{"writer", "store"}, "", 1}, // no section: the top
	} {
		n := f.Lookup(tc.path...)
		got := ""
		if n != nil {
			got = n.Value
		}
		if got != tc.value || f.Line(tc.path...) != tc.line {
			t.Errorf("%v: got %q at line %d, want %q at line %d", tc.path, got, f.Line(tc.path...), tc.value, tc.line)
		}
	}
	if n := Key(f.Lookup("fwd"), "ports"); n == nil || len(n.Content) != 2 {
		t.Errorf("Key(fwd, ports): got %v, want the list of two ports", n)
	}
	if n := Key(f.Lookup("ring", "path"), "x"); n != nil {
		t.Errorf("Key of a value: got %v, want nil", n)
	}
}
