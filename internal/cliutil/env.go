package cliutil

import (
	"reflect"
	"strings"

	"github.com/urfave/cli/v2"
)

// The environment scheme, one for every command: a setting's variable is
// FMCAP_<SECTION>_<KEY>, named like its key in the configuration file
// (FMCAP_WRITER_STORE for writer.store, FMCAP_RING_SIZE for ring.size).
// A command's own flags are in its section (writer, indexer, fwd, ring for
// fmring, slice for fmslice); a command without a section of the file uses
// its name (FMCAP_FMINJECT_PPS, FMCAP_FMCTL_SOCKET). A flag that
// takes its value from another section's key in the file (fmslice --store
// from writer.store, a consumer's --ring from ring.path, fmctl --socket from
// fwd.control) also reads that key's variable, after its own. --config is
// FMCAP_CONFIG everywhere. urfave/cli reads the variables (command line
// first) and lists them in --help; ApplyConfig and FromConfig then fill
// what is still unset from the file.

// EnvName is the variable of section.key: FMCAP_WRITER_FRAME_SIZE for
// ("writer", "frame-size").
func EnvName(section, key string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return "FMCAP_" + strings.ToUpper(r.Replace(section)+"_"+r.Replace(key))
}

// Env gives every flag its variables and returns flags. keys maps a flag to
// the "section.key" it is read from in the file where that is not
// "<section>.<flag>": in the command's own section the key's variable
// replaces the flag's (fmring's --ring is ring.path: FMCAP_RING_PATH); in
// another section it is read after the flag's own (fmslice --store:
// FMCAP_SLICE_STORE, then FMCAP_WRITER_STORE). Flags that already name
// their variables keep them; single-letter output switches (-w, -q, -n)
// and help/version get none.
func Env(section string, flags []cli.Flag, keys map[string]string) []cli.Flag {
	for _, f := range flags {
		name := f.Names()[0]
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			continue
		}
		ev := v.Elem().FieldByName("EnvVars")
		if !ev.IsValid() || ev.Len() > 0 || len(name) < 2 || name == "help" || name == "version" || name == "check-config" {
			continue
		}
		var names []string
		if name == "config" {
			names = []string{"FMCAP_CONFIG"}
		} else {
			own := EnvName(section, name)
			if k, ok := keys[name]; ok {
				sec, key, _ := strings.Cut(k, ".")
				if sec == section {
					own = EnvName(sec, key)
				} else {
					names = append(names, EnvName(sec, key))
				}
			}
			names = append([]string{own}, names...)
		}
		ev.Set(reflect.ValueOf(names))
	}
	return flags
}
