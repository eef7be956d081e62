package version

import (
	"runtime/debug"
	"testing"
)

func TestString(t *testing.T) {
	for _, c := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "658f2364ab12cd34ef56658f2364ab12cd34ef56"},
			{Key: "vcs.time", Value: "2026-11-30T18:02:11Z"}, {Key: "vcs.modified", Value: "true"}}},
			"(devel) (commit 658f2364ab12, 2026-11-30T18:02:11Z, modified) go1.26.8"},
		{"clean checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.time", Value: "2026-11-30T18:02:11Z"}, {Key: "vcs.modified", Value: "false"}}},
			"(devel) (commit abc, 2026-11-30T18:02:11Z) go1.26.8"},
		{"go install of a tag", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.0"}}, "v0.3.0 go1.26.8"},
		{"no module version", debug.BuildInfo{GoVersion: "go1.26.8"}, "(unknown) go1.26.8"},
	} {
		if got := fromBuildInfo(&c.bi).String(); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// The Makefile's -X values stand in only where the toolchain recorded no
// commit.
func TestLinkerFallback(t *testing.T) {
	defer func(r, tm, m string) { revision, vcsTime, modified = r, tm, m }(revision, vcsTime, modified)
	revision, vcsTime, modified = "0123456789abcdef", "2026-11-30T18:00:00Z", "false"
	in := Read()
	if in.Revision == "" {
		t.Fatalf("got no revision, want the -X one or the toolchain's: %+v", in)
	}
	if in.Go == "" || in.Module == "" {
		t.Fatalf("got %+v, want a module version and a Go version", in)
	}
}
