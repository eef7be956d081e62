package main

// The configuration file is YAML (go.yaml.in/yaml/v3, chosen because its
// node tree keeps line numbers and comments: errors can name the line, and
// rule edits made through the control socket are written back without
// destroying the operator's comments or hand edits: writeback.go). Every
// fmcap process reads its own section of the same file; fwd reads `ring`
// and `fwd`, and checks of the others' sections (writer, indexer, slice)
// only that they are mappings. Any other top-level key is refused with its
// line, as every command refuses it (cliutil.Sections). Rule checks are
// in rules.go.
//
//	ring:
//	  path: /dev/hugepages/fmcap     # created by fmring create (see systemd/)
//	fwd:
//	  backend: afpacket              # afpacket (default) or dpdk
//	  control: /run/fmcap/fwd.sock   # control socket, mode 0600
//	  metrics: 127.0.0.1:9561        # Prometheus /metrics (the default); "" for none
//	  dpdk:
//	    eal: [--in-memory, -m, "256", --no-pci, -l, "1", --vdev=net_af_packet0,iface=eth1]
//	  ports:
//	    - name: p0                   # referred to by rules
//	      device: eth1               # afpacket: interface; dpdk: DPDK port name
//	      addresses: [198.18.1.1/24] # local addresses with their subnet
//	      gateway: 198.18.1.254      # next hop for targets off the subnet (optional)
//	  rules:
//	    - id: 1
//	      in: p0                     # A's packets arrive on this port...
//	      local: 198.18.1.1          # ...addressed to this local address X
//	      peer: 198.18.1.2           # ...from A
//	      out: p1                    # and leave on this port
//	      out_local: 198.18.2.1      # with this local source address Y
//	      target: 198.18.2.2         # to B
//	      snap: 65535                # bytes kept per captured packet
//	      capture: inline            # ingress, egress, inline, both or none
//	      ip_options: drop           # drop (default) or pass: IPv4 options other
//	                                 # than source routes (always dropped)
//	  capture_gso: segment           # a super-frame (TSO/GRO) is captured as its
//	                                 # on-wire segments (segment, the default) or
//	                                 # as one record (keep)

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fmcap/fmcap/internal/ctl"
)

// Mode is a rule's capture mode.
type Mode uint8

const (
	ModeNone Mode = iota
	ModeIngress
	ModeEgress
	ModeInline
	ModeBoth // ingress and egress
)

var modeNames = [...]string{"none", "ingress", "egress", "inline", "both"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode reads a capture mode name.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("capture mode %q: use ingress, egress, inline, both or none", s)
}

// Config is the whole file. Sections of other processes are kept as nodes
// so that fwd accepts a shared file without knowing their keys.
type Config struct {
	Ring    RingConfig `yaml:"ring"`
	Fwd     FwdConfig  `yaml:"fwd"`
	Writer  yaml.Node  `yaml:"writer"`
	Indexer yaml.Node  `yaml:"indexer"`
	Slice   yaml.Node  `yaml:"slice"`

	path   string
	routes []Route    // checked fwd.routes (route.go)
	root   *yaml.Node // the document, for line numbers
	// hash is the SHA-256 of the file as fwd last read or wrote it: a
	// write-back that finds other bytes on disk knows the file was edited
	// by hand meanwhile (see writeback.go).
	hash [sha256.Size]byte
}

// RingConfig is the ring section. fwd uses the path; the rest is fmring's
// (fmring create --config), listed so that the shared file passes fwd's check.
type RingConfig struct {
	Path      string   `yaml:"path"`
	Size      string   `yaml:"size"`
	Consumers []string `yaml:"consumers"`
	MaxCaplen uint32   `yaml:"max_caplen"`
	FirstSeq  uint64   `yaml:"first_seq"`
}

type FwdConfig struct {
	Backend string     `yaml:"backend"`
	Control string     `yaml:"control"`
	Metrics *string    `yaml:"metrics"` // Prometheus address; default 127.0.0.1:9561, "" for none
	DPDK    DPDKConfig `yaml:"dpdk"`
	// CaptureGSO: "segment" (default) or "keep" (gso.go).
	CaptureGSO string        `yaml:"capture_gso"`
	Ports      []PortConfig  `yaml:"ports"`
	Rules      []RuleConfig  `yaml:"rules"`
	Routes     []RouteConfig `yaml:"routes"` // route.go
}

type DPDKConfig struct {
	EAL []string `yaml:"eal"`
}

type PortConfig struct {
	Name      string   `yaml:"name"`
	Device    string   `yaml:"device"`
	Addresses []string `yaml:"addresses"`
	Gateway   string   `yaml:"gateway"`
	Gateway6  string   `yaml:"gateway6"`
	// Neighbors are static ARP entries (address: MAC), never aged: for
	// links where nobody answers ARP (net_null benchmarks) or where the
	// operator wants them pinned.
	Neighbors map[string]string `yaml:"neighbors"`
	// MTU (DPDK ports only): the largest IP packet the port takes and sends;
	// 0: the PMD's default (1500). An AF_PACKET port has its device's.
	MTU int `yaml:"mtu"`
	// GWLB and Mirror give the port an appliance role (appliance_config.go).
	GWLB   *GWLBConfig   `yaml:"gwlb"`
	Mirror *MirrorConfig `yaml:"mirror"`
}

// RuleConfig is one rule as written in the file and on the control socket.
type RuleConfig = ctl.Rule

// Port is a checked port.
type Port struct {
	Name     string
	Device   string
	Prefixes []netip.Prefix
	Gateway  netip.Addr // IPv4 next hop off the subnets; invalid when none
	Gateway6 netip.Addr // the same for IPv6
	Static   map[netip.Addr][6]byte
	MTU      int // DPDK: configured MTU (0: the PMD's default)
	// Appliance: the port is a GWLB appliance or a mirror target
	// (appliance.go) instead of an end of rules; nil: rules.
	Appliance *Appliance
}

// Rule is a checked rule.
type Rule struct {
	ID               uint32
	In, Out          int // port indexes
	Local, Peer      netip.Addr
	OutLocal, Target netip.Addr
	Snap             uint32
	Mode             Mode
	IPOptions        bool // forward IPv4 options other than source routes
}

const defaultSnap = 65535

// ConfigError is an error in the file, with the line it is on.
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// LoadConfig reads and checks the file.
func LoadConfig(path string) (*Config, []Port, []Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, b)
}

func parseConfig(path string, b []byte) (*Config, []Port, []Rule, error) {
	c := &Config{path: path}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, nil, nil, yamlErr(path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil, &ConfigError{File: path, Msg: "empty file: see fwd/config.go or systemd/fmcap.yaml for an example"}
		}
		return nil, nil, nil, yamlErr(path, err)
	}
	// The write-back re-encodes the first document only: a second one
	// would be lost silently, so it is refused here.
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, nil, nil, &ConfigError{File: path, Line: more.Line, Msg: "a second YAML document (after ---): keep the whole configuration in one"}
	}
	c.root = &root
	c.hash = sha256.Sum256(b)
	ports, rules, err := c.check()
	if err != nil {
		return nil, nil, nil, err
	}
	return c, ports, rules, nil
}

// yamlErr turns the library's "yaml: line N: msg" (one or many) into
// ConfigErrors naming the file, with a hint for unknown keys.
func yamlErr(path string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []string
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			msg := sm[2]
			if strings.Contains(msg, "not found in type") {
				msg = strings.Replace(msg, "field ", "unknown key ", 1)
				msg = msg[:strings.Index(msg, " not found")] + ": remove it or check its spelling and indentation"
			}
			out = append(out, (&ConfigError{File: path, Line: line, Msg: msg}).Error())
		} else {
			out = append(out, (&ConfigError{File: path, Msg: m}).Error())
		}
	}
	return errors.New(strings.Join(out, "\n"))
}

// lineOf finds the line of the value at a path of mapping keys and sequence
// indexes in the document ("fwd", "rules", 2, "peer"); 0 when absent. The
// deepest node found is used, so a missing key points at its parent.
func (c *Config) lineOf(path ...any) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return n.Line
}

func (c *Config) errAt(msg string, path ...any) error {
	return &ConfigError{File: c.path, Line: c.lineOf(path...), Msg: msg}
}

// check validates everything fwd needs and returns the checked ports and
// rules, or the first error with its line.
func (c *Config) check() ([]Port, []Rule, error) {
	// The other processes' sections are theirs to check, but each is a
	// mapping of settings: anything else is a mistake of indentation.
	for _, sec := range []struct {
		name string
		n    *yaml.Node
	}{{"writer", &c.Writer}, {"indexer", &c.Indexer}, {"slice", &c.Slice}} {
		if k := sec.n.Kind; k != 0 && k != yaml.MappingNode && sec.n.Tag != "!!null" {
			return nil, nil, c.errAt(sec.name+": expected a mapping of settings (key: value lines indented under it)", sec.name)
		}
	}
	f := &c.Fwd
	switch f.Backend {
	case "", "afpacket", "dpdk":
	default:
		return nil, nil, c.errAt(fmt.Sprintf("backend %q: use afpacket or dpdk", f.Backend), "fwd", "backend")
	}
	switch f.CaptureGSO {
	case "", "segment", "keep":
	default:
		return nil, nil, c.errAt(fmt.Sprintf("capture_gso %q: use segment (a record per on-wire segment) or keep (a record per super-frame)", f.CaptureGSO), "fwd", "capture_gso")
	}
	if len(f.Ports) == 0 {
		return nil, nil, c.errAt("no ports: fwd needs at least one entry under fwd.ports", "fwd")
	}
	if len(f.Ports) > 255 {
		return nil, nil, c.errAt("more than 255 ports", "fwd", "ports")
	}
	ports := make([]Port, len(f.Ports))
	byName := map[string]int{}
	locals := map[netip.Addr]string{}
	devices := map[string]string{}
	for i, pc := range f.Ports {
		at := func(k string) []any { return []any{"fwd", "ports", i, k} }
		if pc.Name == "" {
			return nil, nil, c.errAt("port without a name: add name: (rules refer to it)", "fwd", "ports", i)
		}
		if _, dup := byName[pc.Name]; dup {
			return nil, nil, c.errAt(fmt.Sprintf("port %q defined twice", pc.Name), at("name")...)
		}
		if pc.Device == "" {
			return nil, nil, c.errAt(fmt.Sprintf("port %q has no device: add device: (an interface, or a DPDK port name)", pc.Name), "fwd", "ports", i)
		}
		if other, dup := devices[pc.Device]; dup {
			return nil, nil, c.errAt(fmt.Sprintf("port %q: device %s is port %q's already: a device is one port", pc.Name, pc.Device, other), at("device")...)
		}
		devices[pc.Device] = pc.Name
		if len(pc.Addresses) == 0 {
			return nil, nil, c.errAt(fmt.Sprintf("port %q has no addresses: add addresses: [ADDR/LEN]", pc.Name), "fwd", "ports", i)
		}
		p := Port{Name: pc.Name, Device: pc.Device, MTU: pc.MTU}
		if pc.MTU != 0 && (pc.MTU < 68 || pc.MTU > 65535-etherHdrLen) {
			return nil, nil, c.errAt(fmt.Sprintf("port %q mtu %d: use 68..65521 (DPDK ports; an AF_PACKET port has its device's)", pc.Name, pc.MTU), at("mtu")...)
		}
		for j, a := range pc.Addresses {
			pf, err := netip.ParsePrefix(a)
			if err != nil || pf.Addr().Is4In6() || pf.Addr().Zone() != "" {
				return nil, nil, c.errAt(fmt.Sprintf("port %q address %q: write an address with its subnet length, e.g. 198.18.1.1/24 or 2001:2::1/64", pc.Name, a), "fwd", "ports", i, "addresses", j)
			}
			if other, dup := locals[pf.Addr()]; dup {
				return nil, nil, c.errAt(fmt.Sprintf("address %s is already a local address of port %q", pf.Addr(), other), "fwd", "ports", i, "addresses", j)
			}
			locals[pf.Addr()] = pc.Name
			p.Prefixes = append(p.Prefixes, pf)
		}
		for _, gw := range []struct {
			key, val string
			v6       bool
			dst      *netip.Addr
		}{{"gateway", pc.Gateway, false, &p.Gateway}, {"gateway6", pc.Gateway6, true, &p.Gateway6}} {
			if gw.val == "" {
				continue
			}
			g, err := netip.ParseAddr(gw.val)
			if err != nil || g.Is6() != gw.v6 {
				return nil, nil, c.errAt(fmt.Sprintf("port %q %s %q: not an IPv%s address", pc.Name, gw.key, gw.val, map[bool]string{false: "4", true: "6"}[gw.v6]), at(gw.key)...)
			}
			if !p.onLink(g) {
				return nil, nil, c.errAt(fmt.Sprintf("port %q %s %s is not on any of the port's subnets", pc.Name, gw.key, g), at(gw.key)...)
			}
			*gw.dst = g
		}
		for ipS, macS := range pc.Neighbors {
			a, err := netip.ParseAddr(ipS)
			if err != nil || a.Zone() != "" {
				return nil, nil, c.errAt(fmt.Sprintf("port %q neighbor %q: not an IP address", pc.Name, ipS), at("neighbors")...)
			}
			hw, err := net.ParseMAC(macS)
			if err != nil || len(hw) != 6 {
				return nil, nil, c.errAt(fmt.Sprintf("port %q neighbor %s: MAC %q: write it as 02:00:00:00:00:01", pc.Name, ipS, macS), at("neighbors")...)
			}
			if p.Static == nil {
				p.Static = map[netip.Addr][6]byte{}
			}
			p.Static[a] = [6]byte(hw)
		}
		if pc.GWLB != nil || pc.Mirror != nil {
			a, key, err := checkAppliance(&pc)
			if err != nil {
				return nil, nil, c.errAt(err.Error(), at(key)...)
			}
			p.Appliance = a
		}
		byName[pc.Name] = i
		ports[i] = p
	}
	if err := checkAppliancePorts(ports); err != nil {
		return nil, nil, c.errAt(err.Error(), "fwd", "ports")
	}
	rules, i, field, err := checkRules(f.Rules, ports)
	if err != nil {
		return nil, nil, c.errAt(err.Error(), "fwd", "rules", i, field)
	}
	taken := map[uint32]string{}
	for _, r := range rules {
		taken[r.ID] = fmt.Sprintf("rule %d", r.ID)
	}
	for _, p := range ports {
		if p.Appliance != nil {
			taken[p.Appliance.Rule] = fmt.Sprintf("%s port %q", p.Appliance.Role, p.Name)
		}
	}
	if c.routes, i, field, err = checkRoutes(f.Routes, ports, taken); err != nil {
		return nil, nil, c.errAt(err.Error(), "fwd", "routes", i, field)
	}
	return ports, rules, nil
}

func (p *Port) onLink(a netip.Addr) bool {
	for _, pf := range p.Prefixes {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

// gateway is the port's next hop for off-subnet destinations of a family.
func (p *Port) gateway(v6 bool) netip.Addr {
	if v6 {
		return p.Gateway6
	}
	return p.Gateway
}

func (p *Port) isLocal(a netip.Addr) bool {
	for _, pf := range p.Prefixes {
		if pf.Addr() == a {
			return true
		}
	}
	return false
}
