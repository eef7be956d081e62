// Package ctl is the control protocol between fwd and fmctl: one JSON
// request per connection on a unix socket, one JSON response back.
//
//	→ {"cmd":"rules.add","rule":{"id":2,"in":"p0",...}}
//	← {"ok":true,"rules":[...]}
//
// Commands: rules.list, rules.add (rule), rules.del (id), rules.set-mode
// (id, mode), the same for routes (routes.list, routes.add (route), ...),
// stats; ports.list, ports.set-capture (port, mode: ingress or none, snap:
// 0 keeps it) for a gwlb or mirror port, ports.set-vni (port, vni: none
// for any) for a mirror port. Every edit answers with the rule (route,
// port) set now in force. A port's role, device, appliance rule id and
// health check are not editable: fwd restarts with the file's.
package ctl

import (
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// Rule is one forwarding rule, as written in the configuration file.
type Rule struct {
	ID       uint32 `yaml:"id" json:"id"`
	In       string `yaml:"in" json:"in"`
	Local    string `yaml:"local" json:"local"`
	Peer     string `yaml:"peer" json:"peer"`
	Out      string `yaml:"out" json:"out"`
	OutLocal string `yaml:"out_local" json:"out_local"`
	Target   string `yaml:"target" json:"target"`
	Snap     uint32 `yaml:"snap,omitempty" json:"snap,omitempty"`
	Capture  string `yaml:"capture,omitempty" json:"capture,omitempty"`
	// IPOptions: "drop" (the default) or "pass" (forward IPv4 options other
	// than a source route, which is always dropped).
	IPOptions string `yaml:"ip_options,omitempty" json:"ip_options,omitempty"`
}

// Route is one route of fwd's router role, as written in the
// configuration file (fwd/route.go).
type Route struct {
	ID      uint32   `yaml:"id" json:"id"`
	Prefix  string   `yaml:"prefix" json:"prefix"`
	Via     string   `yaml:"via" json:"via"`
	Out     string   `yaml:"out" json:"out"`
	In      []string `yaml:"in,omitempty" json:"in,omitempty"` // none: every port
	Capture string   `yaml:"capture,omitempty" json:"capture,omitempty"`
	Snap    uint32   `yaml:"snap,omitempty" json:"snap,omitempty"`
}

// Port is one port as fwd runs it (ports.list): for an appliance port
// (role gwlb or mirror) its settings, defaults spelled out.
type Port struct {
	Name    string   `json:"name"`
	Device  string   `json:"device"`
	Role    string   `json:"role"` // none, gwlb or mirror
	Rule    uint32   `json:"rule,omitempty"`
	Capture string   `json:"capture,omitempty"` // ingress or none
	Snap    uint32   `json:"snap,omitempty"`
	VNI     []uint32 `json:"vni,omitempty"` // mirror: none: any
	Health  *Health  `json:"health_check,omitempty"`
}

// Health is a gwlb port's health check.
type Health struct {
	Protocol       string `json:"protocol"` // tcp or http
	Port           uint16 `json:"port"`
	Path           string `json:"path,omitempty"`
	RequireCapture bool   `json:"require_capture,omitempty"`
}

type Request struct {
	Cmd   string `json:"cmd"`
	Rule  *Rule  `json:"rule,omitempty"`
	Route *Route `json:"route,omitempty"`
	ID    uint32 `json:"id,omitempty"`
	Mode  string `json:"mode,omitempty"`
	// Port, Snap, VNI: ports.set-capture and ports.set-vni.
	Port string   `json:"port,omitempty"`
	Snap uint32   `json:"snap,omitempty"`
	VNI  []uint32 `json:"vni,omitempty"`
}

type Response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Rules  []Rule  `json:"rules,omitempty"`
	Routes []Route `json:"routes,omitempty"`
	Ports  []Port  `json:"ports,omitempty"`
	Stats  *Stats  `json:"stats,omitempty"`
}

type Stats struct {
	Forwarded    uint64            `json:"forwarded"`
	Drops        map[string]uint64 `json:"drops"`
	Captured     uint64            `json:"captured"`
	CaptureDrops uint64            `json:"capture_drops"`
	SuperFrames  uint64            `json:"super_frames"`      // received with GSO/GRO metadata
	TooBigSent   uint64            `json:"icmp_too_big_sent"` // fragmentation needed / packet too big, to senders
	// KernelForwarded: frames the kernel fast path forwarded (fwd.fastpath:
	// kernel), also counted in Forwarded, the rules' and the ports'.
	KernelForwarded uint64      `json:"kernel_forwarded,omitempty"`
	Ports           []PortStats `json:"ports"`
	Rules           []RuleStats `json:"rules"`
	Neighbors       []Neighbor  `json:"neighbors"`
}

type PortStats struct {
	Name      string `json:"name"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	NICDrops  uint64 `json:"nic_drops"` // frames the port's receive ring lost before fwd saw them
	// TxStalls counts episodes of 2 s in which the port's transmit socket
	// refused every frame given to it (each counted by reason as it was
	// refused); TxStalled: in one now (AF_PACKET backend).
	TxStalls  uint64 `json:"tx_stalls"`
	TxStalled bool   `json:"tx_stalled"`
}

type RuleStats struct {
	ID         uint32 `json:"id"`
	Mode       string `json:"mode"`
	FwdPackets uint64 `json:"fwd_packets"`
	FwdBytes   uint64 `json:"fwd_bytes"`
	RevPackets uint64 `json:"rev_packets"`
	RevBytes   uint64 `json:"rev_bytes"`
}

type Neighbor struct {
	Port   string `json:"port"`
	IP     string `json:"ip"`
	MAC    string `json:"mac"`
	State  string `json:"state"`
	Queued int    `json:"queued"`
}

// Call sends one request to the socket and returns the response; a
// response with ok=false comes back as an error carrying its message.
func Call(socket string, req Request) (*Response, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is fwd running with this control path?)", socket, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", socket, err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control socket %s: reading the answer: %w", socket, err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("%s", resp.Error)
	}
	return &resp, nil
}
