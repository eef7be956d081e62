package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/fmcap/fmcap"

// engines are the processes' packages that are not mains; each is imported
// by its main, cmd/NAME, and by nothing else.
var engines = []string{"fwd", "writer", "indexer"}

// pkg is what `go list -json` says of one package, as far as the rule needs.
type pkg struct {
	ImportPath   string
	Name         string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// isProcess says whether p (a path inside the module) is a process's
// package: a main, or an engine.
func isProcess(p pkg) bool {
	rel := strings.TrimPrefix(p.ImportPath, module+"/")
	return p.Name == "main" || slices.Contains(engines, rel)
}

// violations lists, as "importer -> imported", every import of a process's
// package by a package other than its own main, its own tests included.
func violations(pkgs []pkg) []string {
	byPath := map[string]pkg{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	var out []string
	for _, p := range pkgs {
		imports := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		slices.Sort(imports)
		for _, imp := range slices.Compact(imports) {
			q, ok := byPath[imp]
			if !ok || imp == p.ImportPath || !isProcess(q) {
				continue
			}
			rel := strings.TrimPrefix(imp, module+"/")
			if p.ImportPath == module+"/cmd/"+path.Base(rel) && slices.Contains(engines, rel) {
				continue // an engine's own main
			}
			out = append(out, p.ImportPath+" -> "+imp)
		}
	}
	return out
}

// TestNoProcessImportsAnother runs the rule on the module as it is.
func TestNoProcessImportsAnother(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH to list the packages with")
	}
	cmd := exec.Command("go", "list", "-deps", "-test=false", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.ImportPath == module || strings.HasPrefix(p.ImportPath, module+"/") {
			pkgs = append(pkgs, p)
		}
	}
	// The check means nothing if the listing lost the packages it is about.
	var found []string
	for _, p := range pkgs {
		if isProcess(p) {
			found = append(found, strings.TrimPrefix(p.ImportPath, module+"/"))
		}
	}
	for _, want := range []string{"writer", "indexer", "cmd/writer", "cmd/indexer", "tools/fmslice"} {
		if !slices.Contains(found, want) {
			t.Fatalf("go list found no process package %s (found %v)", want, found)
		}
	}
	for _, v := range violations(pkgs) {
		t.Errorf("%s: a package must not import another process's package; move what they share into a library (store/..., query, internal/...)", v)
	}
}

// TestViolations checks the rule itself on a made-up module.
func TestViolations(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	pkgs := []pkg{
		{ImportPath: m("writer"), Name: "writer", Imports: []string{m("store/chunk"), m("indexer")}},
		{ImportPath: m("indexer"), Name: "indexer", Imports: []string{m("store/segment")}, XTestImports: []string{m("indexer")}},
		{ImportPath: m("fwd"), Name: "fwd", Imports: []string{m("internal/ctl")}},
		{ImportPath: m("cmd/writer"), Name: "main", Imports: []string{m("writer"), m("internal/cliutil")}},
		{ImportPath: m("cmd/indexer"), Name: "main", Imports: []string{m("indexer"), m("writer")}},
		{ImportPath: m("cmd/fwd"), Name: "main", Imports: []string{m("fwd")}},
		{ImportPath: m("tools/fmslice"), Name: "main", Imports: []string{m("query"), m("store/chunk")}, TestImports: []string{m("tools/fminject")}},
		{ImportPath: m("tools/fminject"), Name: "main", Imports: []string{m("shmring")}},
		{ImportPath: m("store/segment"), Name: "segment", Imports: []string{m("store/chunk")}, TestImports: []string{m("writer")}},
		{ImportPath: m("store/chunk"), Name: "chunk"},
		{ImportPath: m("query"), Name: "query", Imports: []string{m("store/segment"), m("cmd/writer")}},
		{ImportPath: m("internal/ctl"), Name: "ctl"},
		{ImportPath: m("internal/cliutil"), Name: "cliutil"},
		{ImportPath: m("shmring"), Name: "shmring"},
	}
	got := violations(pkgs)
	want := []string{
		m("writer") + " -> " + m("indexer"),
		m("cmd/indexer") + " -> " + m("writer"),
		m("tools/fmslice") + " -> " + m("tools/fminject"),
		m("store/segment") + " -> " + m("writer"),
		m("query") + " -> " + m("cmd/writer"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\ngot  %q\nwant %q", got, want)
	}
}
