package cliutil

// The file itself: read once, its shape checked (one YAML document, a
// mapping of the sections in Sections, each a mapping of settings), and
// one lookup of keys in it, for values and for the lines errors name.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Sections are the file's top-level keys, one per process. Any other key
// is a mistake (a misspelt section is otherwise ignored, and with it every
// setting under it), refused with its line by every command that reads
// the file; fwd's Config has a field for each (a test keeps them equal).
var Sections = []string{"ring", "fwd", "writer", "indexer", "slice", "fmcapd", "upload"}

// Error is a mistake in the configuration file, at a line (0: the file as
// a whole). Without a file it is a mistake in a flag or a variable.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.File == "":
		return e.Msg
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// File is a configuration file, parsed and its shape checked.
type File struct {
	Path string
	Root *yaml.Node // the document node: Root.Content[0] is the mapping of sections
}

// ReadFile reads and parses the file at path (see ParseFile).
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseFile(path, b)
}

// ParseFile parses b, the contents of the file at path, and checks what
// every command refuses alike: a file that is not one YAML document
// holding a mapping of sections, a section that is not one of Sections
// or is given twice, and a section that is not a mapping of settings.
// Refusing a second document matters to fwd, whose rule write-back
// re-encodes the first one only (it would be lost silently).
func ParseFile(path string, b []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: path, Msg: "empty file: see systemd/fmcap.yaml for an example"}
		}
		return nil, syntaxError(path, err)
	}
	if len(root.Content) == 0 || isNull(root.Content[0]) {
		return nil, &Error{File: path, Msg: "empty file: see systemd/fmcap.yaml for an example"}
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, &Error{File: path, Line: top.Line, Msg: "the file must be a mapping of sections (ring:, fwd:, writer:, ...)"}
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, &Error{File: path, Line: more.Line, Msg: "a second YAML document (after ---): keep the whole configuration in one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(path, err)
	}
	f := &File{Path: path, Root: &root}
	return f, f.checkSections(top)
}

// syntaxError turns the parser's "yaml: line N: msg" into an Error at
// line N. It is the only message of the library read here: the parser
// has no typed error; decoding errors are this package's own (decode.go).
func syntaxError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, m, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				return &Error{File: path, Line: line, Msg: m}
			}
		}
	}
	return &Error{File: path, Msg: msg}
}

// checkSections refuses a top-level key that is not one of Sections, a
// section given twice, and a section that is not a mapping.
func (f *File) checkSections(top *yaml.Node) error {
	first := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], resolve(top.Content[i+1])
		if !slices.Contains(Sections, k.Value) {
			return &Error{File: f.Path, Line: k.Line, Msg: fmt.Sprintf("unknown key %s: not a section (%s): remove it or check its spelling and indentation", k.Value, strings.Join(Sections, ", "))}
		}
		if at, dup := first[k.Value]; dup {
			return &Error{File: f.Path, Line: k.Line, Msg: fmt.Sprintf("section %s given twice (first at line %d): merge them", k.Value, at)}
		}
		first[k.Value] = k.Line
		if v.Kind != yaml.MappingNode && !isNull(v) {
			return &Error{File: f.Path, Line: v.Line, Msg: k.Value + ": expected a mapping of settings (key: value lines indented under it)"}
		}
	}
	return nil
}

// Lookup is the node at a path of mapping keys (string) and sequence
// indexes (int) from the top of the file, ("fwd", "rules", 2, "peer"), or
// nil when it is absent.
func (f *File) Lookup(path ...any) *yaml.Node {
	n, _ := f.walk(path)
	return n
}

// Line is the line of the node at path (see Lookup), for an error about
// it. When the path is absent, the line of the deepest node found: a
// missing key points at its parent.
func (f *File) Line(path ...any) int {
	_, line := f.walk(path)
	return line
}

func (f *File) walk(path []any) (*yaml.Node, int) {
	if f == nil || f.Root == nil || len(f.Root.Content) == 0 {
		return nil, 0
	}
	n := f.Root.Content[0]
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			var key *yaml.Node
			key, next = keyValue(n, k)
			if key != nil {
				line = key.Line
			}
		case int:
			if s := resolve(n); s.Kind == yaml.SequenceNode && k >= 0 && k < len(s.Content) {
				next = s.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return nil, line
		}
		n = next
	}
	return n, n.Line
}

// Key is the value of key in the mapping m, nil when m is not a mapping
// (an alias of one counts) or has no such key.
func Key(m *yaml.Node, key string) *yaml.Node {
	_, v := keyValue(m, key)
	return v
}

func keyValue(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m = resolve(m); m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isNull: a key given without a value (`writer:`), or null or ~.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}
