package cliutil

// One configuration file for every process (the YAML file fwd reads, see
// fwd/config.go). A command with a --config flag takes the settings it was
// not given from, in this order of precedence:
//
//  1. the command line;
//  2. the environment: FMCAP_<SECTION>_<FLAG>, e.g. FMCAP_WRITER_STORE,
//     which urfave/cli reads for the variables Env gave each flag (env.go);
//  3. the file: the key named like the flag (frame-size → frame_size) in
//     the command's section (writer:, indexer:, ...), and --ring from
//     ring.path;
//  4. the flag's default.
//
// A key in the section that is not one of the command's flags is an error
// naming the file and line, as is a value the flag refuses.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// Sections are the file's top-level keys, one per process. Any other key
// is a mistake (a misspelt section is otherwise ignored, and with it every
// setting under it), refused with its line by every command that reads
// the file; fwd's Config has a field for each (a test keeps them equal).
var Sections = []string{"ring", "fwd", "writer", "indexer", "slice"}

// ApplyConfig fills cc's unset flags from the file given by --config (the
// environment was read by urfave/cli, see Env). rename maps file keys to
// flag names where they differ (fmring's ring section: "path" → "ring",
// "consumers" → "consumer").
func ApplyConfig(cc *cli.Context, section string, rename map[string]string) error {
	known := map[string]bool{}
	for _, f := range cc.Command.Flags {
		known[f.Names()[0]] = true
	}
	if len(cc.Command.Flags) == 0 {
		for _, f := range cc.App.Flags {
			known[f.Names()[0]] = true
		}
	}
	path := cc.String("config")
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty file", path)
		}
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the file must be a mapping of sections (ring:, fwd:, writer:, ...)", path, root.Line)
	}
	top := root.Content[0]
	if err := checkSections(path, top); err != nil {
		return err
	}
	set := func(flag string, v *yaml.Node, key string) error {
		if cc.IsSet(flag) {
			return nil
		}
		vals := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			vals = v.Content
		}
		for _, x := range vals {
			if x.Kind != yaml.ScalarNode {
				return fmt.Errorf("%s:%d: %s: give a value, not a %s", path, x.Line, key, kindName(x))
			}
			if err := cc.Set(flag, x.Value); err != nil {
				return fmt.Errorf("%s:%d: %s %q: %v", path, x.Line, key, x.Value, err)
			}
		}
		return nil
	}
	if known["ring"] && section != "ring" {
		if ring := get(top, "ring"); ring != nil {
			if p := get(ring, "path"); p != nil {
				if err := set("ring", p, "ring.path"); err != nil {
					return err
				}
			}
		}
	}
	sec := get(top, section)
	if sec == nil {
		return nil
	}
	if sec.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %s: expected a mapping of settings", path, sec.Line, section)
	}
	for i := 0; i+1 < len(sec.Content); i += 2 {
		k := sec.Content[i]
		flag := strings.ReplaceAll(k.Value, "_", "-")
		if r, ok := rename[k.Value]; ok {
			if r == "" {
				continue // a key of this section that this command does not use
			}
			flag = r
		}
		if !known[flag] || flag == "config" {
			return fmt.Errorf("%s:%d: unknown key %s.%s: remove it or check its spelling (see %s --help; flag --x-y is key x_y)", path, k.Line, section, k.Value, cc.App.Name)
		}
		if err := set(flag, sec.Content[i+1], section+"."+k.Value); err != nil {
			return err
		}
	}
	return nil
}

// checkSections refuses a top-level key that is not one of Sections.
func checkSections(path string, top *yaml.Node) error {
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		if !slices.Contains(Sections, k.Value) {
			return fmt.Errorf("%s:%d: unknown section %s: remove it or check its spelling (sections: %s)", path, k.Line, k.Value, strings.Join(Sections, ", "))
		}
	}
	return nil
}

func get(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// ConfigValue reads one setting, section.key, for commands that take a
// setting of another process's section (fmslice the writer's store, fmctl
// stats the ring and the metrics addresses): its variable
// (FMCAP_<SECTION>_<KEY>, see Env) when set, else the scalar in the
// configuration file at path ("": none). ok is false when neither has it.
func ConfigValue(path, section, key string) (v string, ok bool, err error) {
	if v, ok := os.LookupEnv(EnvName(section, key)); ok {
		return v, true, nil
	}
	if path == "" {
		return "", false, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return "", false, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 {
		return "", false, nil
	}
	sec := get(root.Content[0], section)
	if sec == nil {
		return "", false, nil
	}
	n := get(sec, key)
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false, nil
	}
	return n.Value, true, nil
}

// FromConfig sets flag from section.key of --config when the flag was not
// given (nor its environment variables, which urfave/cli reads: see Env).
func FromConfig(cc *cli.Context, flag, section, key string) error {
	path := cc.String("config")
	if path == "" || cc.IsSet(flag) {
		return nil
	}
	v, ok, err := ConfigValue(path, section, key)
	if err != nil || !ok {
		return err
	}
	return cc.Set(flag, v)
}
