package cliutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestEnvName(t *testing.T) {
	for _, c := range []struct{ section, key, want string }{
		{"writer", "store", "FMCAP_WRITER_STORE"},
		{"writer", "frame-size", "FMCAP_WRITER_FRAME_SIZE"},
		{"ring", "max_caplen", "FMCAP_RING_MAX_CAPLEN"},
		{"slice", "no-index", "FMCAP_SLICE_NO_INDEX"},
	} {
		if got := EnvName(c.section, c.key); got != c.want {
			t.Errorf("EnvName(%q, %q): got %s, want %s", c.section, c.key, got, c.want)
		}
	}
}

// Precedence for every command: command line > environment (the flag's own
// variable, then the other section's key it borrows) > file > default.
func TestEnvPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fmcap.yaml")
	os.WriteFile(file, []byte("ring:\n  path: /file/ring\n  size: 1GiB\nwriter:\n  store: /file/store\n  level: 3\n"), 0o600)
	type cmd struct {
		section string
		keys    map[string]string
		apply   func(*cli.Context) error // how the command reads the file
	}
	writer := cmd{"writer", map[string]string{"ring": "ring.path"}, func(cc *cli.Context) error { return ApplyConfig(cc, "writer", nil) }}
	fmring := cmd{"ring", map[string]string{"ring": "ring.path", "consumer": "ring.consumers"}, func(cc *cli.Context) error {
		return ApplyConfig(cc, "ring", map[string]string{"path": "ring", "consumers": "consumer"})
	}}
	fmslice := cmd{"slice", map[string]string{"store": "writer.store"}, func(cc *cli.Context) error { return FromConfig(cc, "store", "writer", "store") }}
	for _, c := range []struct {
		name string
		cmd  cmd
		args []string
		env  map[string]string
		flag string
		want string
	}{
		{"writer default", writer, nil, nil, "level", "1"},
		{"writer file", writer, []string{"--config", file}, nil, "level", "3"},
		{"writer env over file", writer, []string{"--config", file}, map[string]string{"FMCAP_WRITER_LEVEL": "2"}, "level", "2"},
		{"writer flag over env", writer, []string{"--config", file, "--level", "4"}, map[string]string{"FMCAP_WRITER_LEVEL": "2"}, "level", "4"},
		{"writer store from env", writer, []string{"--config", file}, map[string]string{"FMCAP_WRITER_STORE": "/env/store"}, "store", "/env/store"},
		{"writer ring from file", writer, []string{"--config", file}, nil, "ring", "/file/ring"},
		{"writer ring from ring.path's variable", writer, []string{"--config", file}, map[string]string{"FMCAP_RING_PATH": "/env/ring"}, "ring", "/env/ring"},
		{"writer's own variable first", writer, nil, map[string]string{"FMCAP_RING_PATH": "/env/ring", "FMCAP_WRITER_RING": "/env/wring"}, "ring", "/env/wring"},
		{"config from FMCAP_CONFIG", writer, nil, map[string]string{"FMCAP_CONFIG": file}, "store", "/file/store"},
		{"fmring path", fmring, nil, map[string]string{"FMCAP_RING_PATH": "/env/ring"}, "ring", "/env/ring"},
		{"fmring size env over file", fmring, []string{"--config", file}, map[string]string{"FMCAP_RING_SIZE": "64MiB"}, "size", "64MiB"},
		{"fmring size file", fmring, []string{"--config", file}, nil, "size", "1GiB"},
		{"fmring consumers", fmring, nil, map[string]string{"FMCAP_RING_CONSUMERS": "writer:lossless,indexer:lossy"}, "consumer", "[writer:lossless indexer:lossy]"},
		{"fmslice store from the writer's variable", fmslice, []string{"--config", file}, map[string]string{"FMCAP_WRITER_STORE": "/env/store"}, "store", "/env/store"},
		{"fmslice's own variable first", fmslice, nil, map[string]string{"FMCAP_WRITER_STORE": "/env/store", "FMCAP_SLICE_STORE": "/env/mine"}, "store", "/env/mine"},
		{"fmslice store from the file", fmslice, []string{"--config", file}, nil, "store", "/file/store"},
		{"fmslice flag over all", fmslice, []string{"--config", file, "--store", "/flag"}, map[string]string{"FMCAP_WRITER_STORE": "/env/store"}, "store", "/flag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range os.Environ() {
				if k, _, _ := strings.Cut(v, "="); strings.HasPrefix(k, "FMCAP_") {
					t.Setenv(k, "") // restored after the test
					os.Unsetenv(k)
				}
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var got string
			app := &cli.App{
				Name: "x",
				Flags: Env(c.cmd.section, []cli.Flag{
					&cli.StringFlag{Name: "config"},
					&cli.StringFlag{Name: "ring"},
					&cli.StringFlag{Name: "store"},
					&cli.IntFlag{Name: "level", Value: 1},
					&cli.StringFlag{Name: "size", Value: "256MiB"},
					&cli.StringSliceFlag{Name: "consumer"},
				}, c.cmd.keys),
				Action: func(cc *cli.Context) error {
					if err := c.cmd.apply(cc); err != nil {
						return err
					}
					switch c.flag {
					case "consumer":
						got = fmt.Sprint(cc.StringSlice("consumer"))
					case "level":
						got = fmt.Sprint(cc.Int("level"))
					default:
						got = cc.String(c.flag)
					}
					return nil
				},
			}
			if err := app.Run(append([]string{"x"}, c.args...)); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("--%s: got %q, want %q", c.flag, got, c.want)
			}
		})
	}
}

// Every variable a command reads is listed in its help.
func TestEnvInHelp(t *testing.T) {
	flags := Env("slice", []cli.Flag{&cli.StringFlag{Name: "store"}, &cli.StringFlag{Name: "w"}, &cli.StringFlag{Name: "config"}}, map[string]string{"store": "writer.store"})
	want := []string{"[$FMCAP_SLICE_STORE, $FMCAP_WRITER_STORE]", "", "[$FMCAP_CONFIG]"}
	for i, f := range flags {
		s := f.String()
		if want[i] == "" && strings.Contains(s, "$") || want[i] != "" && !strings.Contains(s, want[i]) {
			t.Errorf("help of --%s: got %q, want %q", f.Names()[0], s, want[i])
		}
	}
}

// ConfigValue, for settings of another section, honors the same variables.
func TestConfigValueEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fmcap.yaml")
	os.WriteFile(file, []byte("ring:\n  path: /file/ring\n"), 0o600)
	for _, c := range []struct {
		path, env, want string
		ok              bool
	}{
		{file, "", "/file/ring", true},
		{file, "/env/ring", "/env/ring", true},
		{"", "/env/ring", "/env/ring", true},
		{"", "", "", false},
	} {
		os.Unsetenv("FMCAP_RING_PATH")
		if c.env != "" {
			t.Setenv("FMCAP_RING_PATH", c.env)
		}
		v, ok, err := ConfigValue(c.path, "ring", "path")
		if err != nil || v != c.want || ok != c.ok {
			t.Errorf("file %q, FMCAP_RING_PATH %q: got %q %v %v, want %q %v", c.path, c.env, v, ok, err, c.want, c.ok)
		}
	}
}
