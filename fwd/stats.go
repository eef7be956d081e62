package fwd

// Statistics: the datapath counts in plain fields it alone writes, and
// copies them under a mutex into Stats at every housekeeping (10 times a
// second) and on demand from the control socket. Readers never touch the
// live counters, so the hot path needs no atomics.

import (
	"fmt"
	"net"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/internal/metrics"
	"github.com/fmcap/fmcap/shmring"
)

// Stats is a snapshot, as served by `fmctl stats`.
type Stats = ctl.Stats

func (d *Datapath) publish() {
	s := ctl.Stats{Drops: map[string]uint64{}}
	for r := rOK + 1; r < rMax; r++ {
		if v := d.c.reasons[r]; v != 0 {
			s.Drops[reasonNames[r]] = v
		}
	}
	for a := range d.c.appliance {
		if v := d.c.appliance[a]; v != 0 {
			s.Drops[applianceNames[a]] = v
		}
	}
	for r := tunOK + 1; r < tunMax; r++ {
		if v := d.c.tunnel[r]; v != 0 {
			s.Drops[tunResultNames[r]] = v
		}
	}
	s.Forwarded = d.c.reasons[rOK]
	s.Captured = d.c.captured
	s.CaptureDrops = d.c.captureDrops
	s.SuperFrames = d.c.superFrames
	s.KernelForwarded = d.c.fastPath
	s.TooBigSent = d.c.tooBigSent
	for i := range d.ports {
		pc := d.c.ports[i]
		s.Ports = append(s.Ports, ctl.PortStats{
			Name: d.ports[i].cfg.Name, RxPackets: pc.rxPkts, RxBytes: pc.rxBytes,
			TxPackets: pc.txPkts, TxBytes: pc.txBytes, NICDrops: d.nicDrops(i),
			TxStalls: pc.txStalls, TxStalled: pc.txStalled,
		})
		for _, n := range d.ports[i].neigh.m {
			s.Neighbors = append(s.Neighbors, ctl.Neighbor{
				Port: d.ports[i].cfg.Name, IP: n.ip.String(), MAC: net.HardwareAddr(n.mac[:]).String(),
				State: neighState(n), Queued: n.qn,
			})
		}
	}
	if d.cur != nil {
		for _, r := range d.cur.rules {
			c := d.byID[r.id]
			s.Rules = append(s.Rules, ctl.RuleStats{
				ID: r.id, Mode: r.mode.String(),
				FwdPackets: c.pkts[0], FwdBytes: c.bytes[0], RevPackets: c.pkts[1], RevBytes: c.bytes[1],
			})
		}
	}
	d.mu.Lock()
	d.pub = s
	d.mu.Unlock()
}

func (d *Datapath) nicDrops(port int) uint64 {
	if d.nic == nil {
		return 0
	}
	return d.nic(port)
}

// Stats returns the last published snapshot.
func (d *Datapath) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pub
}

func neighState(n *neigh) string {
	if n.static {
		return "static"
	}
	return [...]string{"incomplete", "reachable", "stale"}[n.state]
}

// writeMetrics renders a snapshot (and the ring's state) for Prometheus.
func writeMetrics(w *metrics.Writer, s Stats, ring *shmring.Ring) {
	w.Counter("fmcap_fwd_forwarded_packets_total", "Packets forwarded.", s.Forwarded)
	w.Counter("fmcap_fwd_captured_packets_total", "Capture copies put into the ring.", s.Captured)
	w.Counter("fmcap_fwd_drops_total", "Capture copies dropped because the ring was full.", s.CaptureDrops, "stage", "ring_full")
	w.Counter("fmcap_fwd_icmp_too_big_total", "ICMP fragmentation-needed / packet-too-big messages sent to senders of packets longer than the egress MTU.", s.TooBigSent)
	w.Counter("fmcap_fwd_kernel_forwarded_total", "Frames the kernel fast path (fwd.fastpath: kernel) forwarded, also counted as forwarded.", s.KernelForwarded)
	w.Counter("fmcap_fwd_super_frames_total", "Frames received with offload (GSO/GRO) metadata, forwarded whole and captured as segments.", s.SuperFrames)
	for _, k := range metrics.SortedKeys(s.Drops) {
		w.Counter("fmcap_fwd_not_forwarded_total", "Frames not forwarded, by reason (answered ARP/NDP/echo included).", s.Drops[k], "reason", k)
	}
	for _, p := range s.Ports {
		w.Counter("fmcap_fwd_port_rx_packets_total", "Frames received per port.", p.RxPackets, "port", p.Name)
		w.Counter("fmcap_fwd_port_rx_bytes_total", "Bytes received per port.", p.RxBytes, "port", p.Name)
		w.Counter("fmcap_fwd_port_tx_packets_total", "Frames sent per port.", p.TxPackets, "port", p.Name)
		w.Counter("fmcap_fwd_port_tx_bytes_total", "Bytes sent per port.", p.TxBytes, "port", p.Name)
		w.Counter("fmcap_fwd_drops_total", "Frames lost by the port's receive ring (NIC) before fwd saw them.", p.NICDrops, "stage", "nic", "port", p.Name)
		w.Counter("fmcap_fwd_port_tx_stalls_total", "Times the port's transmit socket refused every frame for 2 s.", p.TxStalls, "port", p.Name)
		w.Gauge("fmcap_fwd_port_tx_stalled", "1 while the port's transmit socket refuses every frame.", float64(b2u(p.TxStalled)), "port", p.Name)
	}
	for _, r := range s.Rules {
		id := fmt.Sprint(r.ID)
		w.Counter("fmcap_fwd_rule_packets_total", "Packets forwarded per rule and direction.", r.FwdPackets, "rule", id, "dir", "a_to_b")
		w.Counter("fmcap_fwd_rule_packets_total", "", r.RevPackets, "rule", id, "dir", "b_to_a")
		w.Counter("fmcap_fwd_rule_bytes_total", "Bytes forwarded per rule and direction.", r.FwdBytes, "rule", id, "dir", "a_to_b")
		w.Counter("fmcap_fwd_rule_bytes_total", "", r.RevBytes, "rule", id, "dir", "b_to_a")
	}
	if ring != nil {
		metrics.Ring(w, ring.Info())
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
