package cliutil

// One configuration file for every process (systemd/fmcap.yaml shows one;
// fwd/config.go has fwd's keys). A command with a --config flag takes the
// settings it was not given from, in this order of precedence:
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
//
// Every command reads the file through ReadFile (file.go: its shape, and
// one lookup of keys), then either fills its unset flags from its section
// (ApplyConfig: writer, indexer, fmring) or decodes the file into its
// config struct and lets the flags given override it (Decode and Override:
// fwd). Commands that take a setting of another section read it with
// ConfigValue (fmslice, fmctl).

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// ApplyConfig fills cc's unset flags from the file given by --config (the
// environment was read by urfave/cli, see Env). rename maps file keys to
// flag names where they differ (fmring's ring section: "path" → "ring",
// "consumers" → "consumer"); a key renamed to "" is one this command
// does not use.
func ApplyConfig(cc *cli.Context, section string, rename map[string]string) error {
	path := cc.String("config")
	if path == "" {
		return nil
	}
	f, err := ReadFile(path)
	if err != nil {
		return err
	}
	known := flagNames(cc)
	if known["ring"] && section != "ring" {
		if p := f.Lookup("ring", "path"); p != nil {
			if err := setFlag(cc, f, "ring", p, "ring.path"); err != nil {
				return err
			}
		}
	}
	sec := resolve(f.Lookup(section))
	if sec == nil || sec.Kind != yaml.MappingNode { // absent or empty (ParseFile refused anything else)
		return nil
	}
	first := map[string]int{}
	d := decoder{file: f.Path}
	for i := 0; i+1 < len(sec.Content); i += 2 {
		k := sec.Content[i]
		if err := d.once(first, k); err != nil {
			return err
		}
		flag := strings.ReplaceAll(k.Value, "_", "-")
		if r, ok := rename[k.Value]; ok {
			if r == "" {
				continue
			}
			flag = r
		}
		if !known[flag] || flag == "config" {
			return &Error{File: f.Path, Line: k.Line, Msg: fmt.Sprintf("unknown key %s.%s: remove it or check its spelling (see %s --help; flag --x-y is key x_y)", section, k.Value, cc.App.Name)}
		}
		if err := setFlag(cc, f, flag, sec.Content[i+1], section+"."+k.Value); err != nil {
			return err
		}
	}
	return nil
}

// flagNames are the flags of cc's command (or of the app, when the
// command is the app itself).
func flagNames(cc *cli.Context) map[string]bool {
	flags := cc.Command.Flags
	if len(flags) == 0 {
		flags = cc.App.Flags
	}
	known := map[string]bool{}
	for _, f := range flags {
		known[f.Names()[0]] = true
	}
	return known
}

// setFlag sets flag from the file's value v (each item of a list, for a
// flag given many times) unless the command line or the environment set
// it already.
func setFlag(cc *cli.Context, f *File, flag string, v *yaml.Node, key string) error {
	if cc.IsSet(flag) {
		return nil
	}
	vals := []*yaml.Node{resolve(v)}
	if vals[0].Kind == yaml.SequenceNode {
		vals = vals[0].Content
	}
	for _, x := range vals {
		if x = resolve(x); x.Kind != yaml.ScalarNode {
			return &Error{File: f.Path, Line: x.Line, Msg: fmt.Sprintf("%s: give a value, not a %s", key, kindName(x))}
		}
		if err := cc.Set(flag, x.Value); err != nil {
			return &Error{File: f.Path, Line: x.Line, Msg: fmt.Sprintf("%s %q: %v", key, x.Value, err)}
		}
	}
	return nil
}

// Override is ApplyConfig's counterpart for a command that decoded the
// file into cfg (File.Decode): every flag set on the command line or in
// the environment replaces the setting it stands for in cfg, so the
// precedence is the same. A flag stands for "<section>.<flag>" (frame-size
// is frame_size) or for what keys says (the keys given to Env, e.g.
// "ring": "ring.path"); flags that stand for no field of cfg (--config,
// --log-level) are left alone. A value the field cannot hold is refused,
// naming the flag.
func Override(cc *cli.Context, section string, keys map[string]string, cfg any) error {
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic("cliutil: Override needs a pointer to a struct")
	}
	for name := range flagNames(cc) {
		if name == "config" || !cc.IsSet(name) {
			continue
		}
		sec, key := section, strings.ReplaceAll(name, "-", "_")
		if k, ok := keys[name]; ok {
			sec, key, _ = strings.Cut(k, ".")
		}
		field, ok := fieldAt(rv.Elem(), sec, key)
		if !ok {
			continue
		}
		// A string takes the value as it is ("" too: fwd's --metrics ""
		// means none, not unset); anything else reads it as YAML would.
		n := &yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(cc.Value(name))}
		if t := field.Type(); t.Kind() == reflect.String || t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.String {
			n.Tag = "!!str"
		}
		if err := (decoder{}).decode(n, field, "--"+name); err != nil {
			return err
		}
	}
	return nil
}

// fieldAt is the field of cfg's section sec for key.
func fieldAt(cfg reflect.Value, sec, key string) (reflect.Value, bool) {
	i, ok := fieldsOf(cfg.Type())[sec]
	if !ok {
		return reflect.Value{}, false
	}
	s := cfg.Field(i)
	if s.Kind() != reflect.Struct || s.Type() == nodeType {
		return reflect.Value{}, false
	}
	j, ok := fieldsOf(s.Type())[key]
	if !ok {
		return reflect.Value{}, false
	}
	return s.Field(j), true
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
	f, err := ReadFile(path)
	if err != nil {
		return "", false, err
	}
	n := resolve(f.Lookup(section, key))
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
