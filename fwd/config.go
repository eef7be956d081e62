package fwd

// The configuration file is YAML (go.yaml.in/yaml/v3, chosen because its
// node tree keeps line numbers and comments: errors can name the line, and
// rule edits made through the control socket are written back without
// destroying the operator's comments or hand edits: writeback.go). Every
// fmcap process reads its own section of the same file through
// internal/cliutil, which refuses what every command refuses (a top-level
// key that is no process's section, a section that is not a mapping, a
// second document) and decodes fwd's `ring` and `fwd` sections into
// Config, naming the line of a key Config has no field for or of a value
// its field cannot hold. Rule checks are in rules.go.
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
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/fmcap/fmcap/internal/cliutil"
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

	path string
	file *cliutil.File // the document, for line numbers and write-back
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
	CaptureGSO string       `yaml:"capture_gso"`
	Ports      []PortConfig `yaml:"ports"`
	Rules      []RuleConfig `yaml:"rules"`
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
type ConfigError = cliutil.Error

// LoadConfig reads and checks the file.
func LoadConfig(path string) (*Config, []Port, []Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, b)
}

func parseConfig(path string, b []byte) (*Config, []Port, []Rule, error) {
	f, err := cliutil.ParseFile(path, b)
	if err != nil {
		return nil, nil, nil, err
	}
	c := &Config{path: path, file: f, hash: sha256.Sum256(b)}
	if err := f.Decode(c); err != nil {
		return nil, nil, nil, err
	}
	ports, rules, err := c.check()
	if err != nil {
		return nil, nil, nil, err
	}
	return c, ports, rules, nil
}

func (c *Config) errAt(msg string, path ...any) error {
	return &ConfigError{File: c.path, Line: c.file.Line(path...), Msg: msg}
}

// check validates everything fwd needs and returns the checked ports and
// rules, or the first error with its line.
func (c *Config) check() ([]Port, []Rule, error) {
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
		p := Port{Name: pc.Name, Device: pc.Device}
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
		byName[pc.Name] = i
		ports[i] = p
	}
	rules, i, field, err := checkRules(f.Rules, ports)
	if err != nil {
		return nil, nil, c.errAt(err.Error(), "fwd", "rules", i, field)
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
