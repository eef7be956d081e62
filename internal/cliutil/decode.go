package cliutil

// Typed decoding, for a command that reads its section into a struct (fwd:
// ports and rules are lists of mappings, not flags). It walks the YAML
// tree beside the struct, so that every mistake is found at its own node
// and said in this package's words with that node's line: a key the struct
// has no field for, a key given twice, a list where a value belongs, a
// value its field cannot hold. The library decodes only single values
// (strings, numbers, booleans), each checked here to be a value first.
// Fields are named by their yaml tag (the part before a comma), else by
// their lowercased name, as the library does; a yaml.Node field keeps the
// node as written. Aliases are followed; merge keys (<<) are honoured,
// the mapping's own keys winning over merged ones.

import (
	"fmt"
	"math"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode fills v, a pointer to a struct with a field per section it reads
// (fwd's Config), from the whole file. Sections v has no field for are
// left alone: they are other commands' (ParseFile refused unknown ones).
func (f *File) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic("cliutil: Decode needs a pointer to a struct")
	}
	d := decoder{file: f.Path}
	fields := fieldsOf(rv.Elem().Type())
	top := f.Root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if idx, ok := fields[top.Content[i].Value]; ok {
			if err := d.decode(top.Content[i+1], rv.Elem().Field(idx), top.Content[i].Value); err != nil {
				return err
			}
		}
	}
	return nil
}

type decoder struct {
	file string // for the errors; "" when decoding a flag's value (Override)
}

func (d decoder) errAt(n *yaml.Node, format string, args ...any) error {
	line := n.Line
	if d.file == "" {
		line = 0
	}
	return &Error{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

var nodeType = reflect.TypeOf(yaml.Node{})

// decode fills v from n; name is the key n is the value of, for errors.
func (d decoder) decode(n *yaml.Node, v reflect.Value, name string) error {
	n = resolve(n)
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return nil
	}
	if isNull(n) {
		v.SetZero()
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.decode(n, p.Elem(), name); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return d.decodeStruct(n, v, name)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.errAt(n, "%s: expected a list ([a, b], or one \"- item\" line each), not a %s", name, kindName(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), name); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		return d.decodeMap(n, v, name)
	}
	return d.decodeValue(n, v, name)
}

// decodeStruct fills a struct from a mapping: merged mappings first, then
// the mapping's own keys, each once and each a field.
func (d decoder) decodeStruct(n *yaml.Node, v reflect.Value, name string) error {
	if n.Kind != yaml.MappingNode {
		return d.errAt(n, "%s: expected a mapping (key: value lines indented under it), not a %s", name, kindName(n))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMerge(n.Content[i]) {
			if err := d.merge(n.Content[i+1], v, name); err != nil {
				return err
			}
		}
	}
	fields := fieldsOf(v.Type())
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if isMerge(k) {
			continue
		}
		if err := d.once(first, k); err != nil {
			return err
		}
		idx, ok := fields[k.Value]
		if !ok {
			return d.errAt(k, "unknown key %s: remove it or check its spelling and indentation", k.Value)
		}
		if err := d.decode(n.Content[i+1], v.Field(idx), k.Value); err != nil {
			return err
		}
	}
	return nil
}

// merge decodes the mapping (or list of mappings) a merge key names.
func (d decoder) merge(n *yaml.Node, v reflect.Value, name string) error {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		return d.decodeStruct(n, v, name)
	}
	for _, m := range n.Content {
		if err := d.decodeStruct(resolve(m), v, name); err != nil {
			return err
		}
	}
	return nil
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge"
}

// once refuses a key given twice in one mapping (YAML forbids it, and the
// parser leaves it to decoding).
func (d decoder) once(first map[string]int, k *yaml.Node) error {
	if at, dup := first[k.Value]; dup {
		return d.errAt(k, "%s given twice (first at line %d): keep one", k.Value, at)
	}
	first[k.Value] = k.Line
	return nil
}

func (d decoder) decodeMap(n *yaml.Node, v reflect.Value, name string) error {
	if n.Kind != yaml.MappingNode {
		return d.errAt(n, "%s: expected a mapping (key: value lines indented under it), not a %s", name, kindName(n))
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if err := d.once(first, k); err != nil {
			return err
		}
		kv, ev := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		if err := d.decode(k, kv, name); err != nil {
			return err
		}
		if err := d.decode(n.Content[i+1], ev, name+"."+k.Value); err != nil {
			return err
		}
		m.SetMapIndex(kv, ev)
	}
	v.Set(m)
	return nil
}

// decodeValue fills a string, number or boolean from a single value.
func (d decoder) decodeValue(n *yaml.Node, v reflect.Value, name string) error {
	if n.Kind != yaml.ScalarNode {
		return d.errAt(n, "%s: give a value, not a %s", name, kindName(n))
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		return d.errAt(n, "%s %q: expected %s", name, n.Value, expected(v.Type()))
	}
	return nil
}

// expected says in words what a field of type t holds.
func expected(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("a whole number from %d to %d", int64(-1)<<(t.Bits()-1), int64(math.MaxInt64>>(64-t.Bits())))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(math.MaxUint64>>(64-t.Bits())))
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// fieldsOf maps a struct's keys to its field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		switch key {
		case "-":
			continue
		case "":
			key = strings.ToLower(sf.Name)
		}
		m[key] = i
	}
	return m
}
