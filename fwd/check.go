package fwd

// The checks of the file's fwd section, done at start (fwd --check-config
// too) and on every rule edit's result (writeback.go): the settings, then
// each port, then the rules against the ports (rules.go). The first
// mistake is returned with its line, from the document the file was
// decoded from.

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

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

// check validates everything fwd needs and returns the checked ports and
// rules, or the first error with its line.
func (c *Config) check() ([]Port, []Rule, error) {
	if err := c.checkSettings(); err != nil {
		return nil, nil, err
	}
	ports, err := c.checkPorts()
	if err != nil {
		return nil, nil, err
	}
	if err := checkAppliancePorts(ports); err != nil {
		return nil, nil, c.errAt(err.Error(), "fwd", "ports")
	}
	rules, i, field, err := checkRules(c.Fwd.Rules, ports)
	if err != nil {
		return nil, nil, c.errAt(err.Error(), "fwd", "rules", i, field)
	}
	if c.routes, i, field, err = checkRoutes(c.Fwd.Routes, ports, c.takenIDs(ports)); err != nil {
		return nil, nil, c.errAt(err.Error(), "fwd", "routes", i, field)
	}
	return ports, rules, nil
}

// takenIDs are the ids a route may not have: the rules' and the
// appliance roles', each with what it is.
func (c *Config) takenIDs(ports []Port) map[uint32]string {
	taken := map[uint32]string{}
	for _, r := range c.Fwd.Rules {
		taken[r.ID] = fmt.Sprintf("rule %d", r.ID)
	}
	for _, p := range ports {
		if p.Appliance != nil {
			taken[p.Appliance.Rule] = fmt.Sprintf("%s port %q", p.Appliance.Role, p.Name)
		}
	}
	return taken
}

// checkSettings checks the settings that take one of a few words.
func (c *Config) checkSettings() error {
	f := &c.Fwd
	switch f.Backend {
	case "", "afpacket", "dpdk":
	default:
		return c.errAt(fmt.Sprintf("backend %q: use afpacket or dpdk", f.Backend), "fwd", "backend")
	}
	switch f.CaptureGSO {
	case "", "segment", "keep":
	default:
		return c.errAt(fmt.Sprintf("capture_gso %q: use segment (a record per on-wire segment) or keep (a record per super-frame)", f.CaptureGSO), "fwd", "capture_gso")
	}
	switch f.FastPath {
	case "", "auto", "off":
	case "kernel":
		if f.Backend == "dpdk" {
			return c.errAt("fastpath kernel: the AF_PACKET backend's (a DPDK port is not the kernel's)", "fwd", "fastpath")
		}
	default:
		return c.errAt(fmt.Sprintf("fastpath %q: use auto (the default: in the kernel where it can), kernel (or fail) or off", f.FastPath), "fwd", "fastpath")
	}
	if f.Spin != "" {
		d, err := time.ParseDuration(f.Spin)
		if err != nil || d < 0 || d > maxSpin {
			return c.errAt(fmt.Sprintf("spin %q: a duration from 0 to %v (e.g. 50us)", f.Spin, maxSpin), "fwd", "spin")
		}
		f.spin = d
	}
	return nil
}

// portsSeen is what the ports checked so far hold, each owned by one
// port: names, devices, local addresses.
type portsSeen struct {
	names   map[string]bool
	devices map[string]string // device → port
	locals  map[netip.Addr]string
}

func (c *Config) checkPorts() ([]Port, error) {
	f := &c.Fwd
	if len(f.Ports) == 0 {
		return nil, c.errAt("no ports: fwd needs at least one entry under fwd.ports", "fwd")
	}
	if len(f.Ports) > 255 {
		return nil, c.errAt("more than 255 ports", "fwd", "ports")
	}
	ports := make([]Port, len(f.Ports))
	seen := portsSeen{names: map[string]bool{}, devices: map[string]string{}, locals: map[netip.Addr]string{}}
	for i := range f.Ports {
		p, err := c.checkPort(i, &seen)
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return ports, nil
}

// mtuInRange checks DPDK port i's configured MTU (0: the PMD's default)
// against the range its PMD (driver) says it takes, lo..hi
// (rte_eth_dev_info's min_mtu..max_mtu; hi 0 or below lo: it did not say).
func mtuInRange(i int, p Port, driver string, lo, hi int) error {
	if p.MTU == 0 || hi == 0 || lo > hi || p.MTU >= lo && p.MTU <= hi {
		return nil
	}
	return fmt.Errorf("dpdk: port %s (device %s, fwd.ports[%d]): mtu %d is outside what its PMD %s takes, %d..%d (rte_eth_dev_info min_mtu..max_mtu): set mtu within that range, or leave it out for the PMD's default",
		p.Name, p.Device, i, p.MTU, driver, lo, hi)
}

// checkPort checks port i: its name and device, owned by no other port,
// its addresses, gateways and static neighbors.
func (c *Config) checkPort(i int, seen *portsSeen) (Port, error) {
	pc := c.Fwd.Ports[i]
	at := func(k string) []any { return []any{"fwd", "ports", i, k} }
	if pc.Name == "" {
		return Port{}, c.errAt("port without a name: add name: (rules refer to it)", "fwd", "ports", i)
	}
	if seen.names[pc.Name] {
		return Port{}, c.errAt(fmt.Sprintf("port %q defined twice", pc.Name), at("name")...)
	}
	if pc.Device == "" {
		return Port{}, c.errAt(fmt.Sprintf("port %q has no device: add device: (an interface, or a DPDK port name)", pc.Name), "fwd", "ports", i)
	}
	if other, dup := seen.devices[pc.Device]; dup {
		return Port{}, c.errAt(fmt.Sprintf("port %q: device %s is port %q's already: a device is one port", pc.Name, pc.Device, other), at("device")...)
	}
	seen.devices[pc.Device] = pc.Name
	if len(pc.Addresses) == 0 {
		return Port{}, c.errAt(fmt.Sprintf("port %q has no addresses: add addresses: [ADDR/LEN]", pc.Name), "fwd", "ports", i)
	}
	p := Port{Name: pc.Name, Device: pc.Device, MTU: pc.MTU}
	if pc.MTU != 0 && (pc.MTU < 68 || pc.MTU > 65535-etherHdrLen) {
		return Port{}, c.errAt(fmt.Sprintf("port %q mtu %d: use 68..65521 (DPDK ports; an AF_PACKET port has its device's)", pc.Name, pc.MTU), at("mtu")...)
	}
	for j, a := range pc.Addresses {
		pf, err := netip.ParsePrefix(a)
		if err != nil || pf.Addr().Is4In6() || pf.Addr().Zone() != "" {
			return Port{}, c.errAt(fmt.Sprintf("port %q address %q: write an address with its subnet length, e.g. 198.18.1.1/24 or 2001:2::1/64", pc.Name, a), "fwd", "ports", i, "addresses", j)
		}
		if other, dup := seen.locals[pf.Addr()]; dup {
			return Port{}, c.errAt(fmt.Sprintf("address %s is already a local address of port %q", pf.Addr(), other), "fwd", "ports", i, "addresses", j)
		}
		seen.locals[pf.Addr()] = pc.Name
		p.Prefixes = append(p.Prefixes, pf)
	}
	if err := c.checkGateways(i, &p); err != nil {
		return Port{}, err
	}
	if err := c.checkNeighbors(i, &p); err != nil {
		return Port{}, err
	}
	if pc.GWLB != nil || pc.Mirror != nil {
		a, key, err := checkAppliance(&pc)
		if err != nil {
			return Port{}, c.errAt(err.Error(), at(key)...)
		}
		p.Appliance = a
	}
	seen.names[pc.Name] = true
	return p, nil
}

// checkGateways sets p's gateways: each of its family and on one of p's
// subnets (p's addresses are checked).
func (c *Config) checkGateways(i int, p *Port) error {
	pc := c.Fwd.Ports[i]
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
			return c.errAt(fmt.Sprintf("port %q %s %q: not an IPv%s address", pc.Name, gw.key, gw.val, map[bool]string{false: "4", true: "6"}[gw.v6]), "fwd", "ports", i, gw.key)
		}
		if !p.onLink(g) {
			return c.errAt(fmt.Sprintf("port %q %s %s is not on any of the port's subnets", pc.Name, gw.key, g), "fwd", "ports", i, gw.key)
		}
		*gw.dst = g
	}
	return nil
}

// checkNeighbors sets p's static neighbors (address: MAC).
func (c *Config) checkNeighbors(i int, p *Port) error {
	pc := c.Fwd.Ports[i]
	for ipS, macS := range pc.Neighbors {
		a, err := netip.ParseAddr(ipS)
		if err != nil || a.Zone() != "" {
			return c.errAt(fmt.Sprintf("port %q neighbor %q: not an IP address", pc.Name, ipS), "fwd", "ports", i, "neighbors")
		}
		hw, err := net.ParseMAC(macS)
		if err != nil || len(hw) != 6 {
			return c.errAt(fmt.Sprintf("port %q neighbor %s: MAC %q: write it as 02:00:00:00:00:01", pc.Name, ipS, macS), "fwd", "ports", i, "neighbors")
		}
		if p.Static == nil {
			p.Static = map[netip.Addr][6]byte{}
		}
		p.Static[a] = [6]byte(hw)
	}
	return nil
}

func (c *Config) errAt(msg string, path ...any) error {
	return &ConfigError{File: c.path, Line: c.file.Line(path...), Msg: msg}
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
