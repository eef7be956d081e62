// Package version says which build of fmcap a binary is, from what the Go
// toolchain records in every binary (runtime/debug.ReadBuildInfo): the
// module version (a tag, or a pseudo-version for `go install …@commit`) and,
// for a build from a git checkout, the commit, its time and whether the
// work tree had uncommitted changes. Nothing is stamped at build time, so
// `go build` and `go install` give a true answer by themselves.
//
// The toolchain records no commit where it cannot see the repository: in a
// git worktree (.git is a file there, which cmd/go does not follow) or with
// GOFLAGS=-buildvcs=false. For those, `make build` passes the same three
// facts with -ldflags -X (see the Makefile); they are used only when the
// build information has no vcs.revision of its own.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// Set by the Makefile with -ldflags -X, for builds cmd/go does not stamp.
var (
	revision string // git rev-parse HEAD
	vcsTime  string // the commit's time, UTC, RFC 3339
	modified string // "true" when the work tree had changes
)

// Info is what a build knows about itself.
type Info struct {
	Module   string // module version: v1.2.3, a pseudo-version, or "(devel)" for a build in the checkout
	Revision string // vcs.revision: the git commit, "" when built outside a checkout
	Time     string // vcs.time: the commit's time (RFC 3339)
	Modified bool   // vcs.modified: the work tree differed from the commit
	Go       string // the toolchain
}

// Read returns this binary's build information.
func Read() Info {
	in := Info{Module: "(unknown)", Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		in = fromBuildInfo(bi)
	}
	if in.Revision == "" && revision != "" {
		in.Revision, in.Time, in.Modified = revision, vcsTime, modified == "true"
	}
	return in
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Module: bi.Main.Version, Go: bi.GoVersion}
	if in.Module == "" {
		in.Module = "(unknown)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the one line --version prints after the command's name, e.g.
// "v0.3.0 (commit 658f2364ab12, 2026-11-30T18:02:11Z, modified) go1.26.8".
func (in Info) String() string {
	var b strings.Builder
	b.WriteString(in.Module)
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		fmt.Fprintf(&b, " (commit %s", rev)
		if in.Time != "" {
			b.WriteString(", " + in.Time)
		}
		if in.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	b.WriteString(" " + in.Go)
	return b.String()
}

// Setup gives a command --version (and -v): `NAME VERSION` on stdout, as
// urfave/cli prints it. Every fmcap main calls it on its app.
func Setup(app *cli.App) {
	app.Version = Read().String()
	cli.VersionPrinter = func(cc *cli.Context) {
		fmt.Fprintf(cc.App.Writer, "%s %s\n", cc.App.Name, cc.App.Version)
	}
}
