package fwd

// Checked rules, their capture modes, and the rule table's checks: each
// rule against the ports, and the rule set as a whole (a 1-1 mapping: no
// two rules may match the same packet).
// Used alike for the file at start (fwd --check-config) and for every
// edit through the control socket (fmctl rules add/del/set-mode).

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
)

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

// checkRules checks a whole rule list. On error it returns the index of
// the rule at fault and, when one field is, its key, for the line number.
func checkRules(list []RuleConfig, ports []Port) (rules []Rule, at int, field string, err error) {
	byName := make(map[string]int, len(ports))
	for i, p := range ports {
		byName[p.Name] = i
	}
	rules = make([]Rule, 0, len(list))
	for i, rc := range list {
		r, field, err := checkRule(rc, ports, byName)
		if err != nil {
			return nil, i, field, err
		}
		if err := overlaps(rules, r); err != nil {
			return nil, i, "", err
		}
		if field, err := applianceConflict(ports, r); err != nil {
			return nil, i, field, err
		}
		rules = append(rules, r)
	}
	return rules, 0, "", nil
}

// checkRule checks one rule against the ports. On error it also names the
// field at fault, for the line number.
func checkRule(rc RuleConfig, ports []Port, byName map[string]int) (Rule, string, error) {
	r := Rule{ID: rc.ID, Snap: rc.Snap}
	if rc.ID == 0 {
		return r, "id", fmt.Errorf("rule without an id: add id: N (N > 0, unique)")
	}
	pre := fmt.Sprintf("rule %d: ", rc.ID)
	var ok bool
	if r.In, ok = byName[rc.In]; !ok {
		return r, "in", fmt.Errorf("%sin: port %q is not defined under fwd.ports", pre, rc.In)
	}
	if r.Out, ok = byName[rc.Out]; !ok {
		return r, "out", fmt.Errorf("%sout: port %q is not defined under fwd.ports", pre, rc.Out)
	}
	addr := func(field, s string) (netip.Addr, error) {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Is4In6() || a.Zone() != "" {
			return a, fmt.Errorf("%s%s: %q is not an IP address", pre, field, s)
		}
		return a, nil
	}
	var err error
	if r.Local, err = addr("local", rc.Local); err != nil {
		return r, "local", err
	}
	if r.Peer, err = addr("peer", rc.Peer); err != nil {
		return r, "peer", err
	}
	if r.OutLocal, err = addr("out_local", rc.OutLocal); err != nil {
		return r, "out_local", err
	}
	if r.Target, err = addr("target", rc.Target); err != nil {
		return r, "target", err
	}
	if v6 := r.Local.Is6(); r.Peer.Is6() != v6 || r.OutLocal.Is6() != v6 || r.Target.Is6() != v6 {
		return r, "local", fmt.Errorf("%slocal, peer, out_local and target must all be IPv4 or all IPv6", pre)
	}
	in, out := &ports[r.In], &ports[r.Out]
	if !in.isLocal(r.Local) {
		return r, "local", fmt.Errorf("%slocal %s is not an address of port %q: add it to its addresses or fix the rule", pre, r.Local, in.Name)
	}
	if !out.isLocal(r.OutLocal) {
		return r, "out_local", fmt.Errorf("%sout_local %s is not an address of port %q: add it to its addresses or fix the rule", pre, r.OutLocal, out.Name)
	}
	if !in.onLink(r.Peer) && !in.gateway(r.Peer.Is6()).IsValid() {
		return r, "peer", fmt.Errorf("%speer %s is off port %q's subnets and the port has no gateway", pre, r.Peer, in.Name)
	}
	if !out.onLink(r.Target) && !out.gateway(r.Target.Is6()).IsValid() {
		return r, "target", fmt.Errorf("%starget %s is off port %q's subnets and the port has no gateway", pre, r.Target, out.Name)
	}
	if r.Peer == r.Local || r.Target == r.OutLocal {
		return r, "peer", fmt.Errorf("%sa rule cannot forward to or from its own local address", pre)
	}
	if pf, what := in.subnetEdge(r.Peer); what != "" {
		return r, "peer", fmt.Errorf("%speer %s is the %s of port %q's subnet %s, not a host: give the peer's own address", pre, r.Peer, what, in.Name, pf)
	}
	if pf, what := out.subnetEdge(r.Target); what != "" {
		return r, "target", fmt.Errorf("%starget %s is the %s of port %q's subnet %s, not a host: give the target's own address", pre, r.Target, what, out.Name, pf)
	}
	if r.In == r.Out && r.Peer == r.Target {
		return r, "target", fmt.Errorf("%speer and target are both %s on port %q: a rule forwards between two hosts, so one of them is wrong", pre, r.Peer, in.Name)
	}
	if r.Snap == 0 {
		r.Snap = defaultSnap
	}
	if r.Snap < 14 || r.Snap > 65535 {
		return r, "snap", fmt.Errorf("%ssnap %d: use 14..65535", pre, r.Snap)
	}
	if rc.Capture == "" {
		rc.Capture = "both"
	}
	if r.Mode, err = ParseMode(rc.Capture); err != nil {
		return r, "capture", fmt.Errorf("%s%w", pre, err)
	}
	switch rc.IPOptions {
	case "", "drop":
	case "pass":
		r.IPOptions = true
	default:
		return r, "ip_options", fmt.Errorf("%sip_options %q: use drop (the default) or pass", pre, rc.IPOptions)
	}
	return r, "", nil
}

// overlaps refuses a rule whose id, or either of whose match keys, another
// rule already has: the table is a 1-1 mapping, so a packet must match at
// most one rule in one direction.
func overlaps(rules []Rule, r Rule) error {
	for _, o := range rules {
		switch {
		case o.ID == r.ID:
			return fmt.Errorf("rule %d: id already used by another rule", r.ID)
		case o.In == r.In && o.Local == r.Local && o.Peer == r.Peer,
			o.Out == r.In && o.OutLocal == r.Local && o.Target == r.Peer:
			return fmt.Errorf("rule %d overlaps rule %d: packets to %s from %s on that port would match both", r.ID, o.ID, r.Local, r.Peer)
		case o.Out == r.Out && o.OutLocal == r.OutLocal && o.Target == r.Target,
			o.In == r.Out && o.Local == r.OutLocal && o.Peer == r.Target:
			return fmt.Errorf("rule %d overlaps rule %d: replies to %s from %s on that port would match both", r.ID, o.ID, r.OutLocal, r.Target)
		}
	}
	return nil
}

// subnetEdge says whether a is the network or the broadcast address of
// the port's subnet that contains it: no host has those, and a rule
// sending to one would reach every host of the subnet or none. /31 and
// /32 (RFC 3021), and /127 and /128 (RFC 6164) have no such addresses.
// IPv6 has no broadcast; its all-zero host part is the subnet-router
// anycast address (RFC 4291 2.6.1), refused likewise.
func (p *Port) subnetEdge(a netip.Addr) (netip.Prefix, string) {
	for _, pf := range p.Prefixes {
		host := a.BitLen() - pf.Bits()
		if !pf.Contains(a) || host < 2 {
			continue
		}
		sub := pf.Masked()
		if a == sub.Addr() {
			if a.Is6() {
				return sub, "subnet-router anycast (network) address"
			}
			return sub, "network address"
		}
		if a.Is4() {
			b := sub.Addr().As4()
			binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|(1<<host-1))
			if a == netip.AddrFrom4(b) {
				return sub, "broadcast address"
			}
		}
	}
	return netip.Prefix{}, ""
}
