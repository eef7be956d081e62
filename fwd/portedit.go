package fwd

// Run-time edits of an appliance port (fmctl ports set-capture, set-vni).
// They go as rule edits do (writeback.go): checked as the file's gwlb: or
// mirror: section is at start, written into the file first, then swapped
// into the datapath with the table (table.appl), so the poll goroutine
// sees a port's settings change between two bursts, never within one.
//
// Editable: capture and snap (gwlb and mirror), vni (mirror). Not
// editable, a restart changes them: a port's role and device (what the
// port is: a rule's port cannot turn into a GWLB target under its
// flows), the appliance's rule id (the id its records were stored under,
// and that rules and routes are checked against), the health check
// (what the load balancer's target group probes, configured on both
// sides).

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/fmcap/fmcap/internal/cliutil"
)

// portEdit is one edit of an appliance port's section.
type portEdit struct {
	verb    string   // set-capture or set-vni
	port    string   // the port's name
	capture string   // set-capture: ingress or none
	snap    uint32   // set-capture: 0 keeps the port's
	vni     []uint32 // set-vni: the VNIs accepted; none: any
}

// section is the key of pc's appliance section ("" if it has none).
func section(pc *PortConfig) string {
	switch {
	case pc.GWLB != nil:
		return "gwlb"
	case pc.Mirror != nil:
		return "mirror"
	}
	return ""
}

// set makes the edit to pc (its section copied first: pc shares it with
// the running configuration).
func (e portEdit) set(pc *PortConfig) error {
	key := section(pc)
	switch {
	case key == "":
		return fmt.Errorf("port %q has no gwlb or mirror section: its capture is its rules' and routes' (fmctl rules set-mode)", e.port)
	case e.verb == "set-capture" && e.capture == "":
		return fmt.Errorf("port %q: set-capture needs a mode: ingress or none", e.port) // "" would read as the default
	case e.verb == "set-vni" && key != "mirror":
		return fmt.Errorf("port %q is a %s port: vni is a mirror port's", e.port, key)
	}
	if g := pc.GWLB; g != nil {
		g := *g
		pc.GWLB = &g
		if e.verb == "set-capture" {
			g.Capture, g.Snap = e.capture, cmpOr(e.snap, g.Snap)
		}
		return nil
	}
	m := *pc.Mirror
	pc.Mirror = &m
	if e.verb == "set-capture" {
		m.Capture, m.Snap = e.capture, cmpOr(e.snap, m.Snap)
	} else {
		m.VNI = slices.Clone(e.vni)
	}
	return nil
}

func cmpOr(a, b uint32) uint32 {
	if a != 0 {
		return a
	}
	return b
}

// editPort makes a port edit and returns the ports now to run, and
// whether the file had been edited by hand.
func (c *Config) editPort(ports []Port, e portEdit) (newPorts []Port, handEdited bool, err error) {
	i := slices.IndexFunc(c.Fwd.Ports, func(p PortConfig) bool { return p.Name == e.port })
	j := slices.IndexFunc(ports, func(p Port) bool { return p.Name == e.port })
	if i < 0 || j < 0 {
		return nil, false, fmt.Errorf("no port %q", e.port)
	}
	pc := c.Fwd.Ports[i]
	if err := e.set(&pc); err != nil {
		return nil, false, err
	}
	a, _, err := checkAppliance(&pc)
	if err != nil {
		return nil, false, err
	}
	if handEdited, err = writeBack(c, portWrite{e, c.Fwd.Ports[i]}); err != nil {
		return nil, handEdited, err
	}
	c.Fwd.Ports = slices.Clone(c.Fwd.Ports)
	c.Fwd.Ports[i] = pc
	// A new slice and Appliance: tables already built keep the old ones.
	newPorts = slices.Clone(ports)
	newPorts[j].Appliance = a
	return newPorts, handEdited, nil
}

// portWrite is a port edit for writeBack; running is the port's section
// as fwd runs it.
type portWrite struct {
	e       portEdit
	running PortConfig
}

// conflict refuses the edit when the port's section in the file is not
// the running one (defaults spelled out): a hand edit of it, which either
// version of the edit would drop.
func (w portWrite) conflict(path string, disk *Config) error {
	i := slices.IndexFunc(disk.Fwd.Ports, func(p PortConfig) bool { return p.Name == w.e.port })
	if i >= 0 {
		run, _, err1 := checkAppliance(&w.running)
		file, _, err2 := checkAppliance(&disk.Fwd.Ports[i])
		if err1 == nil && err2 == nil && sameAppliance(run, file) {
			return nil
		}
	}
	return fmt.Errorf("port %q's %s section was changed in %s by hand since fwd read it, so this edit was not made (nothing changed): "+
		"restart fwd to run the file's, or undo the hand edit of port %q, then repeat the edit", w.e.port, section(&w.running), path, w.e.port)
}

// sameAppliance: vni: [] is vni left out (any).
func sameAppliance(a, b *Appliance) bool {
	x, y := *a, *b
	if len(x.VNIs) == 0 {
		x.VNIs = nil
	}
	if len(y.VNIs) == 0 {
		y.VNIs = nil
	}
	return reflect.DeepEqual(x, y)
}

func (w portWrite) apply(path string, disk *Config) error {
	var seq *yaml.Node
	if f := disk.file.Lookup("fwd"); f != nil {
		seq = cliutil.Key(f, "ports")
	}
	if seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) != len(disk.Fwd.Ports) {
		return fmt.Errorf("%s: fwd.ports is not a plain list of ports (an alias or a merge?): make the edit by hand", path)
	}
	i := slices.IndexFunc(disk.Fwd.Ports, func(p PortConfig) bool { return p.Name == w.e.port })
	key := section(&disk.Fwd.Ports[i]) // conflict found the port, with the running role
	var sec *yaml.Node
	if m := seq.Content[i]; m.Kind == yaml.MappingNode {
		sec = cliutil.Key(m, key)
	}
	if sec == nil || sec.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: port %q's %s is not written as a mapping (an alias?): make the edit by hand", path, seq.Content[i].Line, w.e.port, key)
	}
	if w.e.verb == "set-capture" {
		setKey(sec, "capture", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: w.e.capture})
		if w.e.snap != 0 {
			setKey(sec, "snap", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(uint64(w.e.snap), 10)})
		}
		return nil
	}
	if len(w.e.vni) == 0 {
		setKey(sec, "vni", nil) // absent: every session
		return nil
	}
	list := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, v := range w.e.vni {
		list.Content = append(list.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(uint64(v), 10)})
	}
	setKey(sec, "vni", list)
	return nil
}

// setKey sets key's value in mapping m, keeping the key's comments;
// v nil removes the key.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			if v == nil {
				m.Content = slices.Delete(m.Content, i, i+2)
				return
			}
			old := m.Content[i+1]
			v.LineComment, v.HeadComment, v.FootComment = old.LineComment, old.HeadComment, old.FootComment
			m.Content[i+1] = v
			return
		}
	}
	if v != nil {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	}
}
