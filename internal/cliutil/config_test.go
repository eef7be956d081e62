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
		{"misspelt section", "writer:\n  store: /s\nwirter:\n  store: /t\n", "f.yaml:3: unknown section wirter"},
		{"unknown section first", "stats:\n  x: 1\nwriter:\n  store: /s\n", "f.yaml:1: unknown section stats"},
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
