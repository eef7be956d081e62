package cliutil

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// Every command that reads the shared file refuses a top-level key that is
// no process's section, naming the file and the line.
func TestApplyConfigSections(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"known sections", "ring:\n  path: /r\nfwd:\n  ports: []\nwriter:\n  store: /s\nindexer: {}\nslice: {}\n", ""},
		{"misspelt section", "writer:\n  store: /s\nwirter:\n  store: /t\n", "f.yaml:3: unknown key wirter: not a section"},
		{"unknown section first", "stats:\n  x: 1\nwriter:\n  store: /s\n", "f.yaml:1: unknown key stats: not a section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.yaml")
			if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			app := &cli.App{Name: "writer", Flags: []cli.Flag{&cli.StringFlag{Name: "config"}, &cli.StringFlag{Name: "store"}}}
			fs := flag.NewFlagSet("writer", flag.ContinueOnError)
			for _, f := range app.Flags {
				if err := f.Apply(fs); err != nil {
					t.Fatal(err)
				}
			}
			if err := fs.Parse([]string{"--config", path}); err != nil {
				t.Fatal(err)
			}
			cc := cli.NewContext(app, fs, nil)
			cc.Command = &cli.Command{Name: "writer"}
			err := ApplyConfig(cc, "writer", nil)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.want == "" && cc.String("store") != "/s" {
				t.Errorf("store %q, want /s from the file", cc.String("store"))
			}
		})
	}
}

// A command that fills its flags from its section names the line of a
// key it has no flag for, of a key given twice, and of a value its flag
// refuses.
func TestApplyConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown key", "writer:\n  store: /s\n  frame_sise: 4\n", "f.yaml:3: unknown key writer.frame_sise: remove it or check its spelling (see writer --help; flag --x-y is key x_y)"},
		{"config is no key", "writer:\n  config: /x\n", "f.yaml:2: unknown key writer.config"},
		{"key twice", "writer:\n  store: /s\n  store: /t\n", "f.yaml:3: store given twice (first at line 2)"},
		{"value the flag refuses", "writer:\n  level: high\n", `f.yaml:2: writer.level "high": `},
		{"mapping for a value", "writer:\n  store: {a: 1}\n", "f.yaml:2: writer.store: give a value, not a mapping"},
		{"ring.path not a value", "ring:\n  path: {a: b}\n", "f.yaml:2: ring.path: give a value, not a mapping"},
		{"unknown section", "writer: {}\nwrtier: {}\n", "f.yaml:2: unknown key wrtier: not a section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.yaml")
			if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			app := &cli.App{
				Name:   "writer",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "config"}, &cli.StringFlag{Name: "store"}, &cli.StringFlag{Name: "ring"}, &cli.IntFlag{Name: "level"}},
				Action: func(cc *cli.Context) error { err = ApplyConfig(cc, "writer", nil); return nil },
			}
			if e := app.Run([]string{"writer", "--config", path}); e != nil {
				t.Fatal(e)
			}
			if err == nil || !strings.HasPrefix(err.Error(), filepath.Dir(path)+"/"+tc.want) {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}
