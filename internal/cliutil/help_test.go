package cliutil

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := &cli.App{
		Flags:    []cli.Flag{&cli.StringFlag{Name: "store"}, &cli.StringFlag{Name: "w", Aliases: []string{"write"}}, &cli.BoolFlag{Name: "q"}},
		Commands: []*cli.Command{{Name: "flows", Flags: []cli.Flag{&cli.StringFlag{Name: "store"}, &cli.BoolFlag{Name: "json"}}}},
	}
	for _, c := range []struct{ in, want string }{
		{"fmslice tcp port 8080 --store X", "fmslice --store X tcp port 8080"},
		{"fmslice --store X tcp port 8080", "fmslice --store X tcp port 8080"},
		{"fmslice host 1.2.3.4 -q --store=X and port 53 -w out.pcap", "fmslice -q --store=X -w out.pcap host 1.2.3.4 and port 53"},
		{"fmslice tcp -w -", "fmslice -w - tcp"},
		{"fmslice --store X -- tcp --store", "fmslice --store X -- tcp --store"},
		{"fmslice tcp --unknown X", "fmslice tcp --unknown X"},
		{"fmslice flows port 53 --json --store X", "fmslice flows --json --store X port 53"},
		{"fmslice --store X flows udp", "fmslice --store X flows udp"},
	} {
		if got := strings.Join(FlagsFirst(app, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestRequiredHelp(t *testing.T) {
	id := &cli.UintFlag{Name: "id", Required: true, Usage: "rule number", EnvVars: []string{"X_ID"}}
	snap := &cli.UintFlag{Name: "snap", Value: 65535, Usage: "bytes kept"}
	if got := cli.FlagStringer(id); strings.Contains(got, "default") || !strings.Contains(got, "rule number (required) [$X_ID]") {
		t.Errorf("required flag: got %q, want (required) and no default", got)
	}
	if got := cli.FlagStringer(snap); !strings.Contains(got, "(default: 65535)") {
		t.Errorf("optional flag: got %q, want its default", got)
	}
}
