package fwd

// The appliance roles in the configuration file: a port takes one of
//
//	gwlb:                     # a Gateway Load Balancer appliance (GENEVE, UDP 6081)
//	  rule: 100               # rule id of the captured inner packets (1..2^32-1, not a rule's)
//	  capture: ingress        # ingress (default): capture each inner packet; none
//	  snap: 65535             # bytes kept of each inner packet (14..65535, with the 14-byte header fwd adds)
//	  health_check:
//	    protocol: tcp         # tcp (GWLB's default): accept the connection; http: answer GET path
//	    port: 80              # GWLB's default
//	    path: /               # http: the path that answers 200
//	    require_capture: true # http: 503 while captures are being dropped (appliance.go)
//
//	mirror:                   # a Traffic Mirroring target (VXLAN, UDP 4789)
//	  rule: 200
//	  capture: ingress
//	  snap: 65535
//	  vni: [123]              # the mirror sessions' virtual network ids accepted; absent: all
//
// A port with a role is no rule's in or out port. capture, snap and vni
// are also editable at run time (fmctl ports: portedit.go); the rest takes
// a restart.

import (
	"fmt"
	"strings"
)

// GWLBConfig is a port's gwlb: section.
type GWLBConfig struct {
	Rule        uint32      `yaml:"rule"`
	Capture     string      `yaml:"capture"`
	Snap        uint32      `yaml:"snap"`
	HealthCheck *HealthYAML `yaml:"health_check"`
}

// HealthYAML is the health_check: section of a gwlb port.
type HealthYAML struct {
	Protocol       string `yaml:"protocol"`
	Port           uint16 `yaml:"port"`
	Path           string `yaml:"path"`
	RequireCapture *bool  `yaml:"require_capture"`
}

// MirrorConfig is a port's mirror: section.
type MirrorConfig struct {
	Rule    uint32   `yaml:"rule"`
	Capture string   `yaml:"capture"`
	Snap    uint32   `yaml:"snap"`
	VNI     []uint32 `yaml:"vni"`
}

// checkAppliance turns a port's gwlb: or mirror: section into its
// Appliance; on error, the key (under the port) the error is about.
func checkAppliance(pc *PortConfig) (*Appliance, string, error) {
	if pc.GWLB != nil && pc.Mirror != nil {
		return nil, "mirror", fmt.Errorf("port %q: gwlb and mirror: a port has one role", pc.Name)
	}
	a := &Appliance{Capture: true}
	var key, capture string
	if g := pc.GWLB; g != nil {
		key, capture = "gwlb", g.Capture
		a.Role, a.Rule, a.Snap = RoleGWLB, g.Rule, g.Snap
		a.Health = HealthCheck{Port: 80, Path: "/", RequireCapture: true}
		if h := g.HealthCheck; h != nil {
			switch strings.ToLower(h.Protocol) {
			case "", "tcp":
			case "http":
				a.Health.HTTP = true
			default:
				return nil, key, fmt.Errorf("port %q health_check protocol %q: use tcp or http (HTTPS is not answered)", pc.Name, h.Protocol)
			}
			if h.Port != 0 {
				a.Health.Port = h.Port
			}
			if h.Path != "" {
				if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \r\n?") {
					return nil, key, fmt.Errorf("port %q health_check path %q: an absolute path without spaces or query, e.g. /healthz", pc.Name, h.Path)
				}
				a.Health.Path = h.Path
			}
			if h.RequireCapture != nil {
				a.Health.RequireCapture = *h.RequireCapture
			}
		}
	} else {
		m := pc.Mirror
		key, capture = "mirror", m.Capture
		a.Role, a.Rule, a.Snap, a.VNIs = RoleMirror, m.Rule, m.Snap, m.VNI
		for _, v := range m.VNI {
			if v >= 1<<24 {
				return nil, key, fmt.Errorf("port %q vni %d: a VNI has 24 bits (0..16777215)", pc.Name, v)
			}
		}
	}
	if a.Rule == 0 {
		return nil, key, fmt.Errorf("port %q %s: add rule: ID (the rule id its captured packets carry, 1 or more)", pc.Name, key)
	}
	switch capture {
	case "", "ingress":
	case "none":
		a.Capture = false
	default:
		return nil, key, fmt.Errorf("port %q %s capture %q: use ingress or none", pc.Name, key, capture)
	}
	if a.Snap == 0 {
		a.Snap = defaultSnap
	}
	if a.Snap < 14 || a.Snap > 65535 {
		return nil, key, fmt.Errorf("port %q %s snap %d: use 14..65535", pc.Name, key, a.Snap)
	}
	return a, key, nil
}

// checkAppliancePorts refuses two appliance ports with one rule id.
func checkAppliancePorts(ports []Port) error {
	ids := map[uint32]string{}
	for _, p := range ports {
		if p.Appliance != nil {
			if other, dup := ids[p.Appliance.Rule]; dup {
				return fmt.Errorf("port %q: rule id %d is port %q's already", p.Name, p.Appliance.Rule, other)
			}
			ids[p.Appliance.Rule] = p.Name
		}
	}
	return nil
}

// applianceConflict refuses a rule through an appliance port, or with an
// appliance's rule id; on error, the rule's key at fault.
func applianceConflict(ports []Port, r Rule) (string, error) {
	for _, e := range []struct {
		key  string
		port int
	}{{"in", r.In}, {"out", r.Out}} {
		if a := ports[e.port].Appliance; a != nil {
			k, pi := e.key, e.port
			return k, fmt.Errorf("rule %d: port %q is a %s appliance port, not a rule's", r.ID, ports[pi].Name, a.Role)
		}
	}
	for _, p := range ports {
		if a := p.Appliance; a != nil && a.Rule == r.ID {
			return "id", fmt.Errorf("rule %d: id %d is the rule id of %s port %q", r.ID, r.ID, a.Role, p.Name)
		}
	}
	return "", nil
}
