package fwd

// Rule edits through the control socket (fmctl rules add, del, set-mode)
// are written back into the configuration file before they take effect,
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
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/cliutil"
)

// ruleEdit is one edit of the rule table, made alike to the running list
// and to the file's YAML document.
type ruleEdit struct {
	cmd  string // rules.add, rules.del or rules.set-mode
	id   uint32 // the rule it is about
	rule RuleConfig
	mode string
}

// apply returns a copy of list with the edit made.
func (e ruleEdit) apply(list []RuleConfig) ([]RuleConfig, error) {
	list = append([]RuleConfig(nil), list...)
	if e.cmd == "rules.add" {
		return append(list, e.rule), nil
	}
	i := find(list, e.id)
	if i < 0 {
		return nil, fmt.Errorf("no rule with id %d", e.id)
	}
	if e.cmd == "rules.del" {
		return append(list[:i], list[i+1:]...), nil
	}
	list[i].Capture = e.mode
	return list, nil
}

// applyNode makes the edit in seq, the document's fwd.rules, whose items
// are list's one for one.
func (e ruleEdit) applyNode(path string, seq *yaml.Node, list []RuleConfig) error {
	if len(seq.Content) != len(list) {
		return fmt.Errorf("%s:%d: fwd.rules is not a plain list of rules (an alias or a merge?): make the edit by hand", path, seq.Line)
	}
	if e.cmd == "rules.add" {
		var n yaml.Node
		if err := n.Encode(e.rule); err != nil {
			return fmt.Errorf("encode rule %d: %w", e.id, err)
		}
		seq.Content = append(seq.Content, &n)
		return nil
	}
	i := find(list, e.id)
	if i < 0 {
		return fmt.Errorf("%s: no rule with id %d", path, e.id)
	}
	if e.cmd == "rules.del" {
		seq.Content = append(seq.Content[:i:i], seq.Content[i+1:]...)
		return nil
	}
	m := seq.Content[i]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: rule %d is not written as a mapping (an alias?): make the edit by hand", path, m.Line, e.id)
	}
	if v := cliutil.Key(m, "capture"); v != nil {
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s:%d: rule %d: capture is not a plain value: make the edit by hand", path, v.Line, e.id)
		}
		v.Value, v.Tag, v.Style = e.mode, "!!str", 0
		return nil
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "capture"},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e.mode})
	return nil
}

// conflict refuses the edit when the file's version of the rule it is
// about differs from the running one: the operator edited that rule by
// hand, and applying the fmctl edit to either version would drop the other.
func (e ruleEdit) conflict(path string, running, file []RuleConfig) error {
	ri, fi := find(running, e.id), find(file, e.id)
	var what string
	switch {
	case ri < 0 && fi >= 0:
		what = "added to"
	case ri >= 0 && fi < 0:
		what = "removed from"
	case ri >= 0 && normRule(running[ri]) != normRule(file[fi]):
		what = "changed in"
	default:
		return nil
	}
	return fmt.Errorf("rule %d was %s %s by hand since fwd read it, so this edit was not made (nothing changed): "+
		"restart fwd to run the file's rules, or undo the hand edit of rule %d, then repeat the edit", e.id, what, path, e.id)
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

// editRules makes an edit (see the top of this file) and returns the
// checked rules now to run, and whether the file had been edited by hand.
func (c *Config) editRules(ports []Port, e ruleEdit) (rules []Rule, handEdited bool, err error) {
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
	real, err := filepath.EvalSymlinks(c.path)
	if err != nil {
		return nil, false, fmt.Errorf("configuration file: %w; the edit was not made", err)
	}
	cur, err := os.ReadFile(real)
	if err != nil {
		return nil, false, fmt.Errorf("configuration file: %w; the edit was not made", err)
	}
	handEdited = sha256.Sum256(cur) != c.hash
	disk, _, _, err := parseConfig(c.path, cur)
	if err != nil && !handEdited {
		return nil, false, err // fwd's own file: cannot happen, but say so if it does
	}
	if err != nil {
		return nil, handEdited, fmt.Errorf("%s was edited since fwd read it and no longer passes the checks, so this edit was not made (nothing changed):\n%w\nfix the file (fwd --check-config %s), then repeat the edit", c.path, err, c.path)
	}
	if err := e.conflict(c.path, c.Fwd.Rules, disk.Fwd.Rules); err != nil {
		return nil, handEdited, err
	}
	seq, err := disk.rulesNode()
	if err != nil {
		return nil, handEdited, err
	}
	if err := e.applyNode(c.path, seq, disk.Fwd.Rules); err != nil {
		return nil, handEdited, err
	}
	out, err := encodeDoc(disk.file.Root)
	if err != nil {
		return nil, handEdited, fmt.Errorf("encode %s: %w", c.path, err)
	}
	// The file as it would be written must start fwd: with hand edits, the
	// edit can clash with them (a hand-added rule overlapping an added one).
	if _, _, _, err := parseConfig(c.path, out); err != nil {
		if !handEdited {
			return nil, false, err
		}
		return nil, handEdited, fmt.Errorf("with this edit, %s (edited by hand since fwd read it) would no longer pass the checks, so the edit was not made (nothing changed):\n%w", c.path, err)
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
		return nil, handEdited, fmt.Errorf("%w; the edit was not made: fwd (uid %d) may not give the new file %s's owner and group back; make fwd's user own it (make install does: chown fmcap:fmcap)", err, os.Getuid(), c.path)
	}
	if err != nil {
		return nil, handEdited, fmt.Errorf("%w; the edit was not made", err)
	}
	c.file, c.hash, c.Fwd.Rules = disk.file, sha256.Sum256(out), list
	return rules, handEdited, nil
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

// rulesNode finds (or adds) the fwd.rules sequence in the document.
func (c *Config) rulesNode() (*yaml.Node, error) {
	fwd := c.file.Lookup("fwd")
	if fwd == nil || fwd.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: no fwd section", c.path)
	}
	rules := cliutil.Key(fwd, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if rules != nil { // rules: with no value
			*rules = *seq
			return rules, nil
		}
		fwd.Content = append(fwd.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "rules"}, seq)
		return seq, nil
	}
	return rules, nil
}
