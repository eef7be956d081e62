package fwd

// Rule and route edits through the control socket (fmctl rules|routes
// add, del, set-mode), and appliance ports' (fmctl ports set-capture,
// set-vni: portedit.go), are written back into the configuration file before they take effect,
// so that a restart runs the same table. The file is the operator's too:
// they may edit it while fwd runs. An edit therefore goes:
//
//  1. The edit is made to the running rule list and the result checked
//     against the running ports; a refused edit changes nothing.
//  2. The file is read again. When its SHA-256 differs from what fwd last
//     read or wrote, it was edited by hand: the edit is made to that
//     current document (its YAML node tree), so the hand edits, comments
//     included, stay. The hand edits themselves take effect at the next
//     start, as any edit of the file does; fwd logs that it found some.
//  3. Refused, with a message for the fmctl user saying what to do, and
//     nothing changed (neither the file nor the running table):
//     - the current file does not pass the checks fwd --check-config
//     makes (it would not start either);
//     - the hand edit touched the rule the fmctl edit is about (changed,
//     removed or added a rule with that id): fwd cannot tell which of the
//     two the operator means;
//     - the file with the edit made would not pass the checks (e.g. a
//     hand-added rule overlaps the one being added);
//     - the file changes again while being written (checked just before
//     the rename).
//  4. The new document is written with internal/atomicfile (an exclusive
//     temporary file, fsync, rename, fsync of the directory), keeping the
//     file's owner, group and mode. A symlinked configuration is written
//     through: the file it points to is replaced.
//
// Only then is the new table swapped into the datapath. So an fmctl edit
// is never lost silently, and neither is a hand edit.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"

	"go.yaml.in/yaml/v3"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/cliutil"
)

// listEdit is one edit of fwd.rules or fwd.routes (T: RuleConfig or
// RouteConfig), made alike to the running list and to the file's YAML
// document.
type listEdit[T any] struct {
	kind listKind[T]
	verb string // add, del or set-mode
	id   uint32 // the rule or route it is about
	item T      // add: the new one
	mode string // set-mode
}

// listKind is what an edit needs to know of the list it edits.
type listKind[T any] struct {
	key, what string // "rules" and "rule", or "routes" and "route"
	id        func(*T) uint32
	setMode   func(*T, string)
	same      func(a, b T) bool // equal, defaults spelled out
}

var ruleKind = listKind[RuleConfig]{
	key: "rules", what: "rule",
	id:      func(r *RuleConfig) uint32 { return r.ID },
	setMode: func(r *RuleConfig, m string) { r.Capture = m },
	same:    func(a, b RuleConfig) bool { return normRule(a) == normRule(b) },
}

var routeKind = listKind[RouteConfig]{
	key: "routes", what: "route",
	id:      func(r *RouteConfig) uint32 { return r.ID },
	setMode: func(r *RouteConfig, m string) { r.Capture = m },
	same:    func(a, b RouteConfig) bool { return reflect.DeepEqual(normRoute(a), normRoute(b)) },
}

// newEdit is the edit a control command asks for (verb: add, del,
// set-mode; item: add's rule or route, mode: set-mode's).
func newEdit[T any](k listKind[T], verb string, id uint32, item *T, mode string) (listEdit[T], error) {
	e := listEdit[T]{kind: k, verb: verb, id: id, mode: mode}
	switch verb {
	case "add":
		if item == nil {
			return e, fmt.Errorf("%s.add needs a %s", k.key, k.what)
		}
		e.item, e.id = *item, k.id(item)
	case "set-mode":
		if _, err := ParseMode(mode); err != nil {
			return e, err
		}
	}
	return e, nil
}

// find is the index of the item with id in list, -1 if none.
func (k listKind[T]) find(list []T, id uint32) int {
	for i := range list {
		if k.id(&list[i]) == id {
			return i
		}
	}
	return -1
}

// apply returns a copy of list with the edit made.
func (e listEdit[T]) apply(list []T) ([]T, error) {
	list = append([]T(nil), list...)
	if e.verb == "add" {
		return append(list, e.item), nil
	}
	i := e.kind.find(list, e.id)
	if i < 0 {
		return nil, fmt.Errorf("no %s with id %d", e.kind.what, e.id)
	}
	if e.verb == "del" {
		return append(list[:i], list[i+1:]...), nil
	}
	e.kind.setMode(&list[i], e.mode)
	return list, nil
}

// applyNode makes the edit in seq, the document's fwd.rules (or
// fwd.routes), whose items are list's one for one.
func (e listEdit[T]) applyNode(path string, seq *yaml.Node, list []T) error {
	k := e.kind
	if len(seq.Content) != len(list) {
		return fmt.Errorf("%s:%d: fwd.%s is not a plain list of %ss (an alias or a merge?): make the edit by hand", path, seq.Line, k.key, k.what)
	}
	if e.verb == "add" {
		var n yaml.Node
		if err := n.Encode(e.item); err != nil {
			return fmt.Errorf("encode %s %d: %w", k.what, e.id, err)
		}
		seq.Content = append(seq.Content, &n)
		return nil
	}
	i := k.find(list, e.id)
	if i < 0 {
		return fmt.Errorf("%s: no %s with id %d", path, k.what, e.id)
	}
	if e.verb == "del" {
		seq.Content = append(seq.Content[:i:i], seq.Content[i+1:]...)
		return nil
	}
	m := seq.Content[i]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %s %d is not written as a mapping (an alias?): make the edit by hand", path, m.Line, k.what, e.id)
	}
	if v := cliutil.Key(m, "capture"); v != nil {
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s:%d: %s %d: capture is not a plain value: make the edit by hand", path, v.Line, k.what, e.id)
		}
		v.Value, v.Tag, v.Style = e.mode, "!!str", 0
		return nil
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "capture"},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e.mode})
	return nil
}

// conflict refuses the edit when the file's version of the item it is
// about differs from the running one: the operator edited it by hand, and
// applying the fmctl edit to either version would drop the other.
func (e listEdit[T]) conflict(path string, running, file []T) error {
	k := e.kind
	ri, fi := k.find(running, e.id), k.find(file, e.id)
	var what string
	switch {
	case ri < 0 && fi >= 0:
		what = "added to"
	case ri >= 0 && fi < 0:
		what = "removed from"
	case ri >= 0 && !k.same(running[ri], file[fi]):
		what = "changed in"
	default:
		return nil
	}
	return fmt.Errorf("%s %d was %s %s by hand since fwd read it, so this edit was not made (nothing changed): "+
		"restart fwd to run the file's %s, or undo the hand edit of %s %d, then repeat the edit", k.what, e.id, what, path, k.key, k.what, e.id)
}

// normRule spells a rule's defaults out, so that a hand edit writing
// capture: both where the rule had no capture key is no change.
func normRule(r RuleConfig) RuleConfig {
	if r.Snap == 0 {
		r.Snap = defaultSnap
	}
	if r.Capture == "" {
		r.Capture = ModeBoth.String()
	}
	return r
}

// normRoute is normRule for a route (in: [] is in: left out: every port).
func normRoute(r RouteConfig) RouteConfig {
	if r.Snap == 0 {
		r.Snap = defaultSnap
	}
	if r.Capture == "" {
		r.Capture = ModeBoth.String()
	}
	if len(r.In) == 0 {
		r.In = nil
	}
	return r
}

// editRules makes a rule edit (see the top of this file) and returns the
// checked rules now to run, and whether the file had been edited by hand.
func (c *Config) editRules(ports []Port, e listEdit[RuleConfig]) (rules []Rule, handEdited bool, err error) {
	list, err := e.apply(c.Fwd.Rules)
	if err != nil {
		return nil, false, err
	}
	if rules, _, _, err = checkRules(list, ports); err != nil {
		return nil, false, err
	}
	for _, r := range rules {
		for _, rt := range c.routes {
			if rt.ID == r.ID {
				return nil, false, fmt.Errorf("rule %d: id %d is a route's", r.ID, r.ID)
			}
		}
	}
	if handEdited, err = writeBack(c, listWrite[RuleConfig]{e, c.Fwd.Rules, func(d *Config) []RuleConfig { return d.Fwd.Rules }}); err != nil {
		return nil, handEdited, err
	}
	c.Fwd.Rules = list
	return rules, handEdited, nil
}

// editRoutes makes a route edit (as editRules), after which c.routes are
// the checked routes now to run.
func (c *Config) editRoutes(ports []Port, e listEdit[RouteConfig]) (handEdited bool, err error) {
	list, err := e.apply(c.Fwd.Routes)
	if err != nil {
		return false, err
	}
	routes, _, _, err := checkRoutes(list, ports, c.takenIDs(ports))
	if err != nil {
		return false, err
	}
	if handEdited, err = writeBack(c, listWrite[RouteConfig]{e, c.Fwd.Routes, func(d *Config) []RouteConfig { return d.Fwd.Routes }}); err != nil {
		return handEdited, err
	}
	c.Fwd.Routes, c.routes = list, routes
	return handEdited, nil
}

// docEdit is an edit as writeBack makes it to the file read from disk:
// conflict refuses it when a hand edit touched what it is about, apply
// makes it to disk's document.
type docEdit interface {
	conflict(path string, disk *Config) error
	apply(path string, disk *Config) error
}

// listWrite is a rule or route edit for writeBack: running is the list
// fwd runs, of gives the same list of a configuration read from the file.
type listWrite[T any] struct {
	e       listEdit[T]
	running []T
	of      func(*Config) []T
}

func (w listWrite[T]) conflict(path string, disk *Config) error {
	return w.e.conflict(path, w.running, w.of(disk))
}

func (w listWrite[T]) apply(path string, disk *Config) error {
	seq, err := disk.listNode(w.e.kind.key)
	if err != nil {
		return err
	}
	return w.e.applyNode(path, seq, w.of(disk))
}

// writeBack writes an edit into the configuration file (steps 2 to 4 at
// the top of this file). Once it returns nil the file holds the edit and
// c its document.
func writeBack(c *Config, e docEdit) (handEdited bool, err error) {
	real, err := filepath.EvalSymlinks(c.path)
	if err != nil {
		return false, fmt.Errorf("configuration file: %w; the edit was not made", err)
	}
	cur, err := os.ReadFile(real)
	if err != nil {
		return false, fmt.Errorf("configuration file: %w; the edit was not made", err)
	}
	handEdited = sha256.Sum256(cur) != c.hash
	disk, _, _, err := parseConfig(c.path, cur)
	if err != nil && !handEdited {
		return false, err // fwd's own file: cannot happen, but say so if it does
	}
	if err != nil {
		return handEdited, fmt.Errorf("%s was edited since fwd read it and no longer passes the checks, so this edit was not made (nothing changed):\n%w\nfix the file (fwd --check-config %s), then repeat the edit", c.path, err, c.path)
	}
	if err := e.conflict(c.path, disk); err != nil {
		return handEdited, err
	}
	if err := e.apply(c.path, disk); err != nil {
		return handEdited, err
	}
	out, err := encodeDoc(disk.file.Root)
	if err != nil {
		return handEdited, fmt.Errorf("encode %s: %w", c.path, err)
	}
	// The file as it would be written must start fwd: with hand edits, the
	// edit can clash with them (a hand-added rule overlapping an added one).
	if _, _, _, err := parseConfig(c.path, out); err != nil {
		if !handEdited {
			return false, err
		}
		return handEdited, fmt.Errorf("with this edit, %s (edited by hand since fwd read it) would no longer pass the checks, so the edit was not made (nothing changed):\n%w", c.path, err)
	}
	err = atomicfile.Write(real, out, atomicfile.Options{Mode: 0o600, Keep: true, BeforeRename: func() error {
		now, err := os.ReadFile(real)
		if err != nil {
			return fmt.Errorf("configuration file: %w; the edit was not made", err)
		}
		if !bytes.Equal(now, cur) {
			return fmt.Errorf("%s changed while fwd was writing the edit to it, so the edit was not made (nothing changed): repeat it", c.path)
		}
		return nil
	}})
	if errors.Is(err, atomicfile.ErrOwner) {
		// A file owned by another user (root) than fwd's (fmcap): giving
		// it to fwd's user silently would lock the owner out of it.
		return handEdited, fmt.Errorf("%w; the edit was not made: fwd (uid %d) may not give the new file %s's owner and group back; make fwd's user own it (make install does: chown fmcap:fmcap)", err, os.Getuid(), c.path)
	}
	if errors.Is(err, atomicfile.ErrDirSync) {
		// The file holds the edit: it is made, and fwd runs it (a crash
		// now may lose it from the file; said, not hidden).
		slog.Warn("the edit is in the configuration file, but its directory could not be synced: a crash now may lose it", "err", err)
	} else if err != nil {
		return handEdited, fmt.Errorf("%w; the edit was not made", err)
	}
	c.file, c.hash = disk.file, sha256.Sum256(out)
	return handEdited, nil
}

func encodeDoc(root *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// listNode finds (or adds) the fwd.<key> sequence (rules, routes) in the
// document.
func (c *Config) listNode(key string) (*yaml.Node, error) {
	fwd := c.file.Lookup("fwd")
	if fwd == nil || fwd.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: no fwd section", c.path)
	}
	list := cliutil.Key(fwd, key)
	if list == nil || list.Kind != yaml.SequenceNode {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if list != nil { // rules: with no value
			*list = *seq
			return list, nil
		}
		fwd.Content = append(fwd.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, seq)
		return seq, nil
	}
	return list, nil
}
