package cliutil

import (
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// urfave/cli's help prints a required flag's zero value as its default
// ("--id value  (default: 0)"), which reads as if the flag could be left
// out. Every fmcap command imports this package, so its help says
// "(required)" instead.
func init() {
	std := cli.FlagStringer
	cli.FlagStringer = func(f cli.Flag) string { return requiredHelp(f, std(f)) }
}

var defaultText = regexp.MustCompile(` \(default: [^)]*\)`)

func requiredHelp(f cli.Flag, s string) string {
	if r, ok := f.(cli.RequiredFlag); !ok || !r.IsRequired() {
		return s
	}
	s = defaultText.ReplaceAllString(s, "")
	if i := strings.Index(s, " [$"); i >= 0 { // before the variables
		return s[:i] + " (required)" + s[i:]
	}
	return s + " (required)"
}

// FlagsFirst moves the flags that follow the positional arguments (a
// tcpdump filter: `fmslice tcp port 8080 --store X`) in front of them, where
// urfave/cli, which stops at the first argument that is not a flag, reads
// them. A token moves only when it is exactly one of the command's flags
// (-name, --name or --name=value), with its value when the flag takes one;
// everything after "--" is left as it is, for a filter that must contain
// such a token. When args[1] or the first positional argument is a
// subcommand, that subcommand's flags are the ones looked for after it.
func FlagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	flags := app.Flags
	takes := func(fl []cli.Flag, tok string) (known, value bool) {
		name := strings.TrimLeft(tok, "-")
		if name == tok || name == "" || strings.HasPrefix(tok, "---") {
			return false, false
		}
		name, _, eq := strings.Cut(name, "=")
		for _, f := range fl {
			for _, n := range f.Names() {
				if n == name {
					dg, ok := f.(cli.DocGenerationFlag)
					return true, !eq && ok && dg.TakesValue()
				}
			}
		}
		return false, false
	}
	out := []string{args[0]}
	var pos []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if known, value := takes(flags, a); known {
			out = append(out, a)
			if value && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		if len(pos) == 0 && !strings.HasPrefix(a, "-") {
			if c := app.Command(a); c != nil { // the subcommand: its flags from here on
				out = append(out, a)
				flags = c.Flags
				continue
			}
		}
		pos = append(pos, a)
	}
	return append(out, pos...)
}
