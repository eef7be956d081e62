package cliutil

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// A config struct as a command that decodes the file has one (fwd's).
type testConfig struct {
	Ring   testRing  `yaml:"ring"`
	Fwd    testFwd   `yaml:"fwd"`
	Writer yaml.Node `yaml:"writer"`
}

type testRing struct {
	Path string `yaml:"path"`
	Size string `yaml:"size"`
}

type testFwd struct {
	Control   string            `yaml:"control"`
	Metrics   *string           `yaml:"metrics"`
	Burst     uint16            `yaml:"burst"`
	Offset    int8              `yaml:"offset"`
	Debug     bool              `yaml:"debug"`
	EAL       []string          `yaml:"eal"`
	Neighbors map[string]string `yaml:"neighbors"`
	Ports     []testPort        `yaml:"ports"`
}

type testPort struct {
	Name string `yaml:"name"`
	MTU  int    `yaml:"mtu,omitempty"`
}

func TestDecode(t *testing.T) {
	ptr := func(s string) *string { return &s }
	for _, tc := range []struct {
		name, src string
		want      testFwd // compared when err is ""
		err       string
	}{
		{"values", "fwd:\n  control: /c\n  burst: 64\n  offset: -3\n  debug: true\n  eal: [-m, 256]\n",
			testFwd{Control: "/c", Burst: 64, Offset: -3, Debug: true, EAL: []string{"-m", "256"}}, ""},
		{"lists and maps", "fwd:\n  ports:\n    - name: p0\n    - {name: p1, mtu: 9000}\n  neighbors: {198.18.1.2: \"02:00:00:00:00:01\"}\n",
			testFwd{Ports: []testPort{{Name: "p0"}, {Name: "p1", MTU: 9000}}, Neighbors: map[string]string{"198.18.1.2": "02:00:00:00:00:01"}}, ""},
		{"pointer: absent, null, empty", "fwd:\n  metrics:\n", testFwd{}, ""},
		{"pointer: empty string", "fwd:\n  metrics: \"\"\n", testFwd{Metrics: ptr("")}, ""},
		{"empty section", "fwd:\n", testFwd{}, ""},
		{"alias and merge, own key wins", "ring:\n  path: &p /r\nfwd:\n  control: *p\n  ports:\n    - &base {name: p0, mtu: 1500}\n    - <<: *base\n      name: p1\n",
			testFwd{Control: "/r", Ports: []testPort{{Name: "p0", MTU: 1500}, {Name: "p1", MTU: 1500}}}, ""},
		{"unknown key", "fwd:\n  ports:\n    - name: p0\n      mut: 9000\n", testFwd{}, "f.yaml:4: unknown key mut: remove it or check its spelling and indentation"},
		{"unknown key in a section", "fwd:\n  contorl: /c\n", testFwd{}, "f.yaml:2: unknown key contorl"},
		{"key twice", "fwd:\n  control: /a\n  burst: 1\n  control: /b\n", testFwd{}, "f.yaml:4: control given twice (first at line 2)"},
		{"map key twice", "fwd:\n  neighbors:\n    a: x\n    a: y\n", testFwd{}, "f.yaml:4: a given twice (first at line 3)"},
		{"not a number", "fwd:\n  burst: many\n", testFwd{}, `f.yaml:2: burst "many": expected a whole number from 0 to 65535`},
		{"too large", "fwd:\n  burst: 70000\n", testFwd{}, `f.yaml:2: burst "70000": expected a whole number from 0 to 65535`},
		{"too small", "fwd:\n  offset: -200\n", testFwd{}, `f.yaml:2: offset "-200": expected a whole number from -128 to 127`},
		{"not a boolean", "fwd:\n  debug: maybe\n", testFwd{}, `f.yaml:2: debug "maybe": expected true or false`},
		{"list for a value", "fwd:\n  control: [a, b]\n", testFwd{}, "f.yaml:2: control: give a value, not a list"},
		{"value for a list", "fwd:\n  eal: --in-memory\n", testFwd{}, "f.yaml:2: eal: expected a list"},
		{"value for a mapping", "fwd:\n  ports:\n    - p0\n", testFwd{}, "f.yaml:3: ports: expected a mapping (key: value lines indented under it), not a value"},
		{"list item a list", "fwd:\n  eal:\n    - [a]\n", testFwd{}, "f.yaml:3: eal: give a value, not a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFile("f.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			var c testConfig
			err = f.Decode(&c)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("accepted: %+v", c.Fwd)
			case tc.err != "" && !strings.HasPrefix(err.Error(), tc.err):
				t.Errorf("got %q, want it to start with %q", err, tc.err)
			case tc.err == "" && !reflect.DeepEqual(c.Fwd, tc.want):
				t.Errorf("got %+v, want %+v", c.Fwd, tc.want)
			}
		})
	}
	// Other commands' sections are kept as written.
	f, err := ParseFile("f.yaml", []byte("writer:\n  store: /s\n"))
	if err != nil {
		t.Fatal(err)
	}
	var c testConfig
	if err := f.Decode(&c); err != nil || c.Writer.Kind != yaml.MappingNode || Key(&c.Writer, "store").Value != "/s" {
		t.Errorf("writer section: got %v (%v), want the mapping with store: /s", c.Writer.Kind, err)
	}
}

// Override gives a command that decodes the file the precedence of every
// other: command line > environment > file > default.
func TestOverride(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fmcap.yaml")
	if err := os.WriteFile(file, []byte("ring:\n  path: /file/ring\nfwd:\n  control: /file/c\n  metrics: 127.0.0.1:1\n  burst: 8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"ring": "ring.path"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // ring, control, metrics, burst as %v
		err  string
	}{
		{"file", nil, nil, "/file/ring /file/c 127.0.0.1:1 8", ""},
		{"environment over file", nil, map[string]string{"FMCAP_FWD_CONTROL": "/env/c", "FMCAP_FWD_BURST": "16"}, "/file/ring /env/c 127.0.0.1:1 16", ""},
		{"flag over environment", []string{"--control", "/flag/c"}, map[string]string{"FMCAP_FWD_CONTROL": "/env/c"}, "/file/ring /flag/c 127.0.0.1:1 8", ""},
		{"the other section's key, by its variable", nil, map[string]string{"FMCAP_RING_PATH": "/env/ring"}, "/env/ring /file/c 127.0.0.1:1 8", ""},
		{"the flag's own variable first", nil, map[string]string{"FMCAP_RING_PATH": "/env/ring", "FMCAP_FWD_RING": "/env/fring"}, "/env/fring /file/c 127.0.0.1:1 8", ""},
		{"empty value, not absent", []string{"--metrics", ""}, nil, "/file/ring /file/c  8", ""},
		{"flags without a key left alone", []string{"--log-level", "debug"}, nil, "/file/ring /file/c 127.0.0.1:1 8", ""},
		{"a value the field cannot hold", []string{"--burst", "70000"}, nil, "", `--burst "70000": expected a whole number from 0 to 65535`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range os.Environ() {
				if k, _, _ := strings.Cut(v, "="); strings.HasPrefix(k, "FMCAP_") {
					t.Setenv(k, "") // restored after the test
					os.Unsetenv(k)
				}
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var got string
			app := &cli.App{
				Name: "fwd",
				Flags: Env("fwd", []cli.Flag{
					&cli.StringFlag{Name: "config"},
					&cli.StringFlag{Name: "log-level", Value: "info"},
					&cli.StringFlag{Name: "ring"},
					&cli.StringFlag{Name: "control"},
					&cli.StringFlag{Name: "metrics"},
					&cli.StringFlag{Name: "burst"},
				}, keys),
				Action: func(cc *cli.Context) error {
					f, err := ReadFile(cc.String("config"))
					if err != nil {
						return err
					}
					var c testConfig
					if err := f.Decode(&c); err != nil {
						return err
					}
					if err := Override(cc, "fwd", keys, &c); err != nil {
						return err
					}
					m := "<nil>"
					if c.Fwd.Metrics != nil {
						m = *c.Fwd.Metrics
					}
					got = fmt.Sprint(c.Ring.Path, " ", c.Fwd.Control, " ", m, " ", c.Fwd.Burst)
					return nil
				},
			}
			err := app.Run(append([]string{"fwd", "--config", file}, tc.args...))
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("got error %v, want %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case got != tc.want:
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
